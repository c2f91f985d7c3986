"""``replayrec monitor drill``: drift detected → alert → retrain → promotion gates → the service switches to
the new version → online HR recovers, end to end on the live path.

The world: the synthetic behaviour world with an abrupt shift (``shift_day``: every user's taste jumps to a
second one and a new season's items appear). LightGCN is trained on the events before the temporal cut and
served behind a recall of LightGCN plus recent popularity; the broker, the Spark stream job and the service
run as in ``replayrec demo``, Prometheus scrapes them with the project's alert rules, and the monitor runs
in-process (the same :class:`~replayrec.monitoring.MonitorService` ``replayrec monitor run`` runs).

The events after the cut are replayed in lock-step (as ``replay evaluate`` does): the other users' events go
through the bus the way the replay controller sends them; before an evaluated event (a user's first event of a
session) the service is asked for the user's top 10 over HTTP, then the event itself is posted to
``POST /v1/events`` — the shop's path, on which the service counts its online hits per arm. Every few steps
the monitor checks; its verdict starts ``replayrec pipeline run lightgcn --until <replay clock>`` (the data
lake as it stood at the alert); while that trains, the replay goes on (the drift phase) up to
``eval_during`` evaluated events, then waits for the outcome; once the service serves the promoted version,
the rest of the window is the recovery phase. Everything started is stopped.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import yaml

from replayrec.application import wait_for_stream
from replayrec.bus import Schedule, build_schedule
from replayrec.config import Settings
from replayrec.data import WorldConfig, ensure_prepared, load_dataset
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.evaluation import bootstrap_ci, temporal_cutoff
from replayrec.monitoring import (
    DriftThresholds,
    ModelMonitor,
    MonitorConfig,
    MonitorService,
    RetrainConfig,
    RetrainTrigger,
    alerts,
    prometheus_config,
    prometheus_tools,
    rule_files,
    start_prometheus,
)
from replayrec.registry import ModelRegistry
from replayrec.runtime import free_port
from replayrec_serving._replay_eval import _Stepper
from replayrec_serving._settings import ServiceSettings
from replayrec_serving._system import LiveSystem, SystemRequest, live_system

__all__ = ["DrillRequest", "format_drill", "run_drill"]

log = logging.getLogger("replayrec.serving")

DAY_S = 86_400
SESSION_GAP_S = 1800  # an event this long after the user's previous one starts a session
PHASES = ("before_drift", "during_drift", "after_retrain")
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DrillRequest:
    """The world (small enough for CI), the evaluated events per phase, the monitor's window."""

    users: int = 600
    items: int = 1500
    topics: int = 12
    events: int = 90_000
    horizon_days: int = 32
    #: the share of the events after the cut: the live window the drill replays
    holdout: float = 0.3
    #: the shift comes this many days after the temporal cut the models are trained at
    shift_after_cut_days: int = 1  # the shift on the first midnight at least this many days after the cut
    new_items: float = 0.3
    #: the new season's items are this much more popular than the old catalogue's (the season's hits)
    new_item_boost: float = 4.0
    #: the share of each user's sessions that follow their new taste after the shift
    taste_shift: float = 0.5
    seed: int = 7
    eval_before: int = 300
    eval_during: int = 400
    eval_after: int = 400
    window_events: int = 1500
    check_every: int = 4  # steps between two monitor checks
    #: checks the drift must persist before retraining starts: about two and a half simulated days here, so
    #: the retraining sees the new season (a day of it is too little to learn from: measured, its candidate
    #: was stopped by the evaluate gate, worse than prod on the newest events)
    sustain_checks: int = 12
    #: the retraining's data: the last days before the alert (measured: trained on all of the history, the
    #: new season's items stay too rare to be recommended — the model learns popularity from counts)
    retrain_window_days: float = 4.0
    #: the drill asks only at a session's first event, harder than the validation's next item: before the
    #: shift its online / offline HR@10 ratio measured 0.45 (the default threshold, 0.5, would cry wolf)
    degradation_ratio: float = 0.3
    retrain_timeout_s: float = 1200.0
    switch_timeout_s: float = 120.0
    prometheus: bool = True
    k: int = 10
    n_boot: int = 500

    def world(self, shift_day: int | None) -> WorldConfig:
        return WorldConfig(
            n_users=self.users, n_items=self.items, n_topics=self.topics, n_events=self.events,
            seed=self.seed, drift=self.taste_shift if shift_day else 0.0, shift_day=shift_day,
            horizon_days=self.horizon_days, new_item_fraction=self.new_items, shift_boost=self.new_item_boost,
        )  # fmt: skip


@dataclass
class _Timeline:
    t0: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: str, clock: float | None = None, **details: Any) -> None:
        entry = {"t_s": round(time.monotonic() - self.t0, 1), "event": event}
        if clock is not None:
            entry["replay_clock"] = datetime.fromtimestamp(clock, UTC).isoformat(timespec="seconds")
        entry.update(details)
        self.events.append(entry)
        log.info("drill: %s %s", event, details or "")

    def has(self, event: str) -> bool:
        return any(e["event"] == event for e in self.events)


_CASCADE = {
    "recall": {"k": 100, "merge": "quota", "channels": [
        {"type": "lightgcn", "model": "lightgcn@prod", "quota": 80},
        {"type": "popularity", "mode": "recent", "quota": 20},
    ]},
    "rank": {"type": "passthrough", "k": 50},
    "rerank": {"type": "passthrough", "k": 10},
}  # fmt: skip
_TRAIN = {"epochs": 40, "eval_every": 10, "patience": 1, "batch_size": 8192, "lr": 0.02}


def _workspace(settings: ServiceSettings) -> tuple[ServiceSettings, Path]:
    ws = settings.state_dir / "drill"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    (ws / "cascade.yaml").write_text(yaml.safe_dump(_CASCADE, sort_keys=False))
    (ws / "train-profile.yaml").write_text(yaml.safe_dump({"lightgcn": _TRAIN}))
    (ws / "train-lightgcn.yaml").write_text(yaml.safe_dump(_TRAIN))
    drill = settings.model_copy(update={
        "state_dir": ws, "bus_namespace": f"{settings.bus_namespace}-drill", "cascade": ws / "cascade.yaml",
        "registry_poll_s": 1.0,
    })  # fmt: skip
    return drill, ws


def _world(core: Settings, req: DrillRequest) -> WorldConfig:
    """The world, its shift at least ``shift_after_cut_days`` after the temporal cut the models train at
    (the cut moves a little with the shift: fewer duplicate events are removed after it; a few rounds)."""
    start = req.world(None).start
    day = req.horizon_days * 9 // 10
    for _ in range(6):
        world = req.world(day)
        ensure_prepared("synthetic", core, force=True, world=world)
        cut = temporal_cutoff(load_dataset("synthetic", core).interactions(), req.holdout)
        wanted = -(-(cut - start) // DAY_S) + req.shift_after_cut_days  # whole days after the cut's day
        if day >= wanted:
            return world
        day = int(wanted)
        if day >= req.horizon_days - 1:
            break
    raise ConfigError(f"no room for the shift {req.shift_after_cut_days} days after the cut in this world")


def _core(settings: ServiceSettings) -> Settings:
    return Settings(**{k: getattr(settings, k) for k in Settings.model_fields})


class _Lockstep(_Stepper):
    """The replay evaluation's stepper, except that the events the drill posted to the service are not
    published again, and each step waits for everything on the topic (their offsets are the broker's)."""

    def __init__(self, system: LiveSystem, sched: Schedule) -> None:
        super().__init__(system, sched)
        self.posted: set[int] = set()

    def publish_to(self, hi: int) -> None:
        rows = [i for i in range(self.pos, hi) if i not in self.posted]
        if rows:
            values = self.s.encode_many(rows)
            parts = self.s.partitions[rows].tolist()
            futures = [
                self.publisher.send_encoded(self.s.users[i], v, (), p)
                for i, v, p in zip(rows, values, parts, strict=True)
            ]
            self.publisher.flush(timeout_s=60)
            failed = [f for f in futures if f.failed()]
            if failed:
                raise ReplayrecError(
                    f"the broker refused {len(failed)} replayed event(s): {failed[0].exception}"
                )
        self.pos = max(self.pos, hi)
        self.ends = wait_for_stream(self.system.core, self.store, timeout_s=300)


def _candidates(system: LiveSystem, sched: Schedule) -> list[int]:
    """Schedule positions of session-first events of users with a training history: each such user's profile
    is exact when the lock-step asks for it (no event of theirs in the minutes before)."""
    ds = system.dataset
    ev = ds.events
    raw = ds.users["raw_id"].astype(str).to_numpy()
    before = ev["timestamp"].to_numpy() < system.cut
    known = set(raw[np.unique(ev["user"].to_numpy()[before])].tolist())
    last: dict[str, float] = {}
    users_ts = ev.loc[before].groupby("user")["timestamp"].max()
    for u, t in zip(raw[users_ts.index.to_numpy()], users_ts.to_numpy(), strict=True):
        last[str(u)] = float(t)
    out = []
    for i, (u, t) in enumerate(zip(sched.users, sched.times.tolist(), strict=True)):
        if u in known and t - last.get(u, -1e18) >= SESSION_GAP_S:
            out.append(i)
        last[u] = t
    return out


def _steps(sched: Schedule, candidates: list[int], boundary: float, max_gap: int = 200) -> list[list[int]]:
    """Evaluated positions that can share one wait: within one day, on one side of ``boundary`` (the shift),
    at most ``max_gap`` events apart (the other users' events in between lag by at most that much), and no
    user with an event between the step's first position and their own (their profile is exact)."""
    days = (sched.times // DAY_S).astype(np.int64)
    side = sched.times >= boundary
    previous: dict[int, int] = {}
    seen: dict[str, int] = {}
    for i, u in enumerate(sched.users):
        previous[i] = seen.get(u, -1)
        seen[u] = i
    steps: list[list[int]] = []
    for e in candidates:
        g = steps[-1] if steps else None
        if (
            g is None or previous[e] >= g[0] or e - g[0] > max_gap or days[e] != days[g[0]]
            or side[e] != side[g[0]]
        ):  # fmt: skip
            steps.append([e])
        else:
            g.append(e)
    return steps


def _ask(client: httpx.Client, url: str, user: str, k: int) -> tuple[list[str], str]:
    for attempt in range(3):
        r = client.get(
            f"{url}/v1/recommendations/{user}", params={"k": k}, headers={"Cache-Control": "no-cache"}
        )
        if r.status_code == 200:
            body = r.json()
            return [row["item"] for row in body["items"]], str(body.get("arm", "prod"))
        if r.status_code < 500 or attempt == 2:
            raise ReplayrecError(f"the service answered {r.status_code} for {user}: {r.text[:200]}")
        time.sleep(0.5)
    raise AssertionError("unreachable")


def _post(client: httpx.Client, url: str, sched: Schedule, rows: list[int]) -> None:
    body = [
        {"user": sched.users[i], "item": sched.items[i], "action": sched.actions[i],
         "event_time": datetime.fromtimestamp(float(sched.times[i]), UTC).isoformat(),
         "event_id": f"drill:{sched.event_id(i)}"}
        for i in rows
    ]  # fmt: skip
    r = client.post(f"{url}/v1/events", json=body)
    if r.status_code != 202:
        raise ReplayrecError(f"POST /v1/events answered {r.status_code}: {r.text[:300]}")


def _serving(client: httpx.Client, url: str) -> dict[str, str]:
    doc = client.get(f"{url}/v1/arms", headers={"Connection": "close"}).json()
    return {
        str(k): str(v) for k, v in ((doc["serving"]["arms"].get("prod") or {}).get("versions") or {}).items()
    }


@contextlib.contextmanager
def _prometheus(
    req: DrillRequest,
    ws: Path,
    system: LiveSystem,
    stream_port: int,
    monitor_port: int,
    timeline: _Timeline,
) -> Iterator[str | None]:
    """Prometheus scraping the service, the stream job and the monitor every second, with the project's
    rules (None when the binaries cannot be had: the drill then runs on the monitor's own verdicts)."""
    if not req.prometheus:
        yield None
        return
    try:
        prometheus_tools(alertmanager=False)
    except ReplayrecError as exc:
        timeline.add("prometheus unavailable", detail=str(exc))
        yield None
        return
    host = system.url.split("//", 1)[1]
    targets = {
        "service": [host],
        "stream": [f"127.0.0.1:{stream_port}"],
        "monitor": [f"127.0.0.1:{monitor_port}"],
    }
    config = prometheus_config(targets, scrape_interval_s=1, evaluation_interval_s=1,
                               rule_files=rule_files(system.core))  # fmt: skip
    with start_prometheus(config, ws / "prometheus") as server:
        timeline.add("prometheus started", url=server.url)
        yield server.url


def _firing(url: str | None) -> list[str]:
    if url is None:
        return []
    try:
        return sorted({a["labels"]["alertname"] for a in alerts(url) if a.get("state") == "firing"})
    except (ReplayrecError, httpx.HTTPError, KeyError):
        return []


def run_drill(settings: ServiceSettings, req: DrillRequest, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the drill (see the module docstring); its timeline and numbers as JSON."""
    drill, ws = _workspace(settings)
    core = _core(drill)
    t_start = time.perf_counter()
    world = _world(core, req)
    shift = float(world.start + (world.shift_day or 0) * DAY_S)
    stream_port = free_port()
    system_req = SystemRequest(
        dataset="synthetic", train_config=ws / "train-profile.yaml", retrain=True, workers=1,
        plugins=("lightgcn",), protocol="loo", holdout=req.holdout, stream_metrics_port=stream_port,
        clear_store_at_exit=True,
    )  # fmt: skip
    timeline = _Timeline()
    with live_system(drill, system_req, say) as system, contextlib.ExitStack() as stack:
        timeline.add("system up", clock=float(system.cut), models=system.models, cut=system.cut)
        out = _run(req, ws, system, stack, timeline, shift, stream_port, say)
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def _run(
    req: DrillRequest,
    ws: Path,
    system: LiveSystem,
    stack: contextlib.ExitStack,
    timeline: _Timeline,
    shift: float,
    stream_port: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    core = system.core
    sched = build_schedule(system.dataset, system.bus.event_partitions, float(system.cut), None)
    candidates = _candidates(system, sched)
    steps = _steps(sched, candidates, shift)
    config = MonitorConfig(
        window_events=req.window_events, drift=DriftThresholds(min_events=min(500, req.window_events)),
        sustain_checks=req.sustain_checks, degradation_ratio=req.degradation_ratio,
        retrain=RetrainConfig(plugin="lightgcn", cooldown_s=3600, as_of_clock=True,
                              window_days=req.retrain_window_days,
                              train_config=ws / "train-lightgcn.yaml", cascade=ws / "cascade.yaml"),
    )  # fmt: skip
    mon = ModelMonitor(core, system.dataset, system.settings.tracking_uri or "", config, system.url)
    stack.callback(mon.close)
    stepper = _Lockstep(system, sched)
    stack.callback(stepper.close)

    def clock() -> float | None:
        state = stepper.clock.read()
        return None if state is None else state.clock

    trigger = RetrainTrigger(
        core, config.retrain, system.dataset.name, mon.registry.tracking_uri, mon.metrics, clock
    )
    service = MonitorService(mon, trigger, token=system.token)
    monitor_port = free_port()
    stack.enter_context(service.serve(port=monitor_port))
    prom = stack.enter_context(_prometheus(req, ws, system, stream_port, monitor_port, timeline))
    http = stack.enter_context(httpx.Client(timeout=60))
    pool = ThreadPoolExecutor(4)
    stack.callback(pool.shutdown, wait=False, cancel_futures=True)
    say(f"drill: {len(sched):,} events after the cut, {len(candidates):,} evaluable, {len(steps)} steps")

    hits: dict[str, list[tuple[str, str, int]]] = {p: [] for p in PHASES}  # (user, target item, rank)
    caps = {"before_drift": req.eval_before, "during_drift": req.eval_during, "after_retrain": req.eval_after}
    state: dict[str, Any] = {"phase": "before_drift", "prod": _serving(http, system.url), "reports": []}
    timeline.add("serving", versions=state["prod"])
    for n, step in enumerate(steps):
        phase = _phase(state, sched, step[0], shift, timeline)
        if phase == "during_drift" and len(hits[phase]) >= caps[phase] and state.get("job") is not None:
            _await_retrain(req, system, http, state, trigger, timeline)
            phase = _phase(state, sched, step[0], shift, timeline)
        if phase == "after_retrain" and len(hits[phase]) >= caps[phase]:
            break
        stepper.publish_to(step[0])
        stepper.set_clock(float(sched.times[step[0]]) - 0.001)
        time.sleep(0.25)  # each worker re-reads the replay clock at most every 200 ms
        take = step[: max(0, caps[phase] - len(hits[phase]))]  # a full phase goes on replaying, unevaluated
        jobs = [(e, pool.submit(_ask, http, system.url, sched.users[e], req.k)) for e in take]
        for e, fut in jobs:
            items, _arm = fut.result()
            target = sched.items[e]
            hits[phase].append((sched.users[e], target, items.index(target) + 1 if target in items else 0))
        if take:
            _post(http, system.url, sched, take)
            stepper.posted.update(take)
        if n % req.check_every == req.check_every - 1:
            _check(service, state, timeline, prom, clock())
            if state.get("job") is not None and state["job"].poll() is not None:
                _await_retrain(req, system, http, state, trigger, timeline)
    if state.get("job") is not None:
        _await_retrain(req, system, http, state, trigger, timeline)
    return _result(req, system, hits, timeline, state, shift)


def _phase(state: dict[str, Any], sched: Schedule, pos: int, shift: float, timeline: _Timeline) -> str:
    if state.get("switched"):
        phase = "after_retrain"
    elif float(sched.times[pos]) >= shift:
        phase = "during_drift"
    else:
        phase = "before_drift"
    if phase != state["phase"]:
        timeline.add(f"phase {phase}", clock=float(sched.times[pos]))
        state["phase"] = phase
    return phase


def _check(
    service: MonitorService, state: dict[str, Any], timeline: _Timeline, prom: str | None, at: float | None
) -> None:
    report = service.step()
    state["reports"].append({"clock": at, **_brief(report.to_dict())})
    if report.reasons and not timeline.has("drift detected"):
        timeline.add("drift detected", clock=at, trigger=report.trigger, reasons=report.reasons)
    firing = _firing(prom)
    new = sorted(set(firing) - set(state.get("firing", [])))
    if new:
        timeline.add("prometheus alerts firing", clock=at, alerts=new)
        state["firing"] = sorted(set(firing) | set(state.get("firing", [])))
    job = service.trigger.current
    if job is not None and state.get("job") is not job:
        state["job"] = job
        until = job.until
        timeline.add("retrain started", clock=at, via=job.via, trigger=job.trigger, reasons=job.reasons,
                     until=until, log=str(job.log_path))  # fmt: skip


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    drift = report.get("drift") or {}
    return {
        "scores": drift.get("scores"), "unseen_share": drift.get("unseen_share"),
        "live_events": (drift.get("events") or {}).get("live"), "reasons": report.get("reasons"),
        "arms": {a: {k: h.get(k) for k in ("hr", "events", "offline_hr", "ratio")}
                 for a, h in report["arms"].items()},
    }  # fmt: skip


def _await_retrain(
    req: DrillRequest,
    system: LiveSystem,
    http: httpx.Client,
    state: dict[str, Any],
    trigger: RetrainTrigger,
    timeline: _Timeline,
) -> None:
    """Wait for the retraining job, record its outcome, and (when promoted) for the service to serve it."""
    job = state["job"]
    if state.get("retrain_done"):
        return
    outcome = job.wait(req.retrain_timeout_s)
    trigger.finish(job)
    state["retrain_done"] = True
    timeline.add(
        "retrain finished", outcome=outcome, seconds=round((job.finished or time.time()) - job.started, 1)
    )
    if outcome != "promoted":
        return
    new = _prod_version(trigger)
    timeline.add("promoted", version=new)
    deadline = time.monotonic() + req.switch_timeout_s
    while time.monotonic() < deadline:
        serving = _serving(http, system.url)
        if serving.get("lightgcn", "").removeprefix("v") == new:
            state["switched"] = True
            timeline.add("service switched", versions=serving)
            return
        time.sleep(0.5)
    timeline.add("service did not switch", waited_s=req.switch_timeout_s)


def _prod_version(trigger: RetrainTrigger) -> str | None:
    found = ModelRegistry(trigger.tracking_uri).by_alias(trigger.config.plugin, "prod")
    return None if found is None else found.version


def _hr(rows: list[tuple[str, str, int]], req: DrillRequest) -> dict[str, Any]:
    """HR@k of evaluated events with a user-bootstrap 95% interval."""
    if not rows:
        return {"events": 0, f"hr@{req.k}": None}
    users = np.array([u for u, _, _ in rows])
    ranks = np.array([r for _, _, r in rows])
    _, idx = np.unique(users, return_inverse=True)
    counts = np.bincount(idx).astype(np.float64)
    per_user = np.bincount(idx, weights=(ranks > 0).astype(np.float64)) / counts
    ci = bootstrap_ci({"hr": per_user}, {"hr": counts}, n_boot=req.n_boot, seed=req.seed)["hr"]
    hr = round(float((ranks > 0).mean()), 4)
    return {"events": len(rows), "users": int(counts.size), f"hr@{req.k}": hr,
            "ci": [round(float(ci[0]), 4), round(float(ci[1]), 4)]}  # fmt: skip


def _slices(system: LiveSystem, rows: list[tuple[str, str, int]]) -> dict[str, list[tuple[str, str, int]]]:
    """Cold users (≤ 5 training events) / heavy users (the top tenth by training events); popular items (the
    heaviest fifth of the training events) / long-tail items (the rest seen in training) / new items."""
    ds = system.dataset
    ev = ds.events[ds.events["timestamp"].to_numpy() < system.cut]
    user_n = ev.groupby("user").size()
    raw_u = ds.users["raw_id"].astype(str).to_numpy()
    activity = dict(zip(raw_u[user_n.index.to_numpy()], user_n.to_numpy().tolist(), strict=True))
    heavy_at = float(np.quantile(user_n.to_numpy(), 0.9)) if len(user_n) else 0.0
    item_n = ev.groupby("item").size().sort_values(ascending=False)
    raw_i = ds.catalog.raw_ids.astype(str)
    cum = np.cumsum(item_n.to_numpy()) / max(float(item_n.sum()), 1.0)
    popular = set(raw_i[item_n.index.to_numpy()[cum <= 0.2]].tolist())
    seen = set(raw_i[item_n.index.to_numpy()].tolist())
    names = ("cold_users", "heavy_users", "popular_items", "long_tail_items", "new_items")
    out: dict[str, list[tuple[str, str, int]]] = {k: [] for k in names}
    for row in rows:
        user, item, _ = row
        n = activity.get(user, 0)
        if n <= 5:
            out["cold_users"].append(row)
        if n >= heavy_at:
            out["heavy_users"].append(row)
        key = "popular_items" if item in popular else "long_tail_items" if item in seen else "new_items"
        out[key].append(row)
    return out


def _result(
    req: DrillRequest,
    system: LiveSystem,
    hits: dict[str, list[tuple[str, str, int]]],
    timeline: _Timeline,
    state: dict[str, Any],
    shift: float,
) -> dict[str, Any]:
    phases = {phase: _hr(rows, req) for phase, rows in hits.items()}
    slices = {
        phase: {name: _hr(rows_s, req) for name, rows_s in _slices(system, rows).items()}
        for phase, rows in hits.items()
    }
    job = state.get("job")
    hr = f"hr@{req.k}"
    return {
        "detected": timeline.has("drift detected"),
        "alerted": bool(state.get("firing")),
        "retrained": job is not None and job.outcome in ("promoted", "stopped"),
        "promoted": timeline.has("promoted"),
        "switched": bool(state.get("switched")),
        "hr_before_drift": phases["before_drift"][hr],
        "hr_during_drift": phases["during_drift"][hr],
        "hr_after_retrain": phases["after_retrain"][hr],
        "phases": phases,
        "slices": slices,
        "timeline": timeline.events,
        "alerts": state.get("firing", []),
        "retrain": None if job is None else job.to_dict(),
        "checks": state["reports"],
        "world": system.dataset.manifest.get("params"),
        "shift": datetime.fromtimestamp(shift, UTC).isoformat(timespec="seconds"),
        "cut": datetime.fromtimestamp(system.cut, UTC).isoformat(timespec="seconds"),
        "models_before": system.models,
    }


def format_drill(res: dict[str, Any]) -> str:
    """The drill as a few lines: the verdicts, HR@10 per phase with its interval, the timeline."""
    verdicts = ("detected", "alerted", "retrained", "promoted", "switched")
    flags = ", ".join(f"{k} {'yes' if res[k] else 'no'}" for k in verdicts)
    lines = [f"drill: {flags}  ({res['seconds']:.0f} s)"]
    for phase, p in res["phases"].items():
        hr = p.get("hr@10")
        lines.append(f"  {phase:<14} hr@10 " + ("–" if hr is None else
                     f"{hr:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}] on {p['events']} events"))  # fmt: skip
    lines.append("timeline:")
    for e in res["timeline"]:
        extra = {k: v for k, v in e.items() if k not in ("t_s", "event", "replay_clock")}
        lines.append(
            f"  {e['t_s']:>7.1f} s  {e.get('replay_clock', ''):<25} {e['event']}  {extra if extra else ''}"
        )
    return "\n".join(lines)
