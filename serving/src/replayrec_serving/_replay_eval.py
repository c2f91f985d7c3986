"""Replay evaluation: does following behaviour in real time beat serving from yesterday's (or the training
day's) features? Measured on the live path — bus → streaming job → Redis → the service over HTTP.

The events after the temporal cut ``T`` are replayed in order, in lock-step: before the events of an
evaluated user, everything earlier is published, the run waits until the stream job has applied it (that
wait is the freshness measured), the replay clock is set to just before the next event, and the service is
asked for the user's top ``k`` by every arm (``?arm=``, the admin's forced arm); a hit is the event's item in
the list. Arms, on the same events:

* ``real_time`` — the prod cascade reading the live store (profiles and item statistics as the stream keeps
  them);
* ``nightly`` — the same models reading a snapshot of the store taken at each simulated midnight;
* ``frozen`` — the same models reading the snapshot taken at ``T``;
* ``popularity`` — the service's recent popularity (live per-day counts), the user's items excluded;
* ``item_cf`` (optional) — item-to-item CF (fitted before ``T``) on the live profile.

Several evaluated events share one wait when none of their users has an event between the wait and their
own: each user's profile is then exact, and the item statistics lag by at most ``group_events`` events of
other users, never across a midnight.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import numpy as np
import numpy.typing as npt
import redis

from replayrec.application import online_store, stream_dir, wait_for_stream
from replayrec.bus import EventPublisher, RedisStateStore, ReplayState, Schedule, build_schedule
from replayrec.cascade import read_cascade_layout
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.evaluation import bootstrap_ci, paired_ratio
from replayrec.features import OnlineFeatures, view_namespace
from replayrec.runtime import read_pid
from replayrec_serving._experiment import Experiment, ExperimentArm, ExperimentStore
from replayrec_serving._settings import default_serving_cascade
from replayrec_serving._system import LiveSystem

__all__ = ["ARMS", "ReplayEvalRequest", "evaluate_replay", "format_replay_eval"]

log = logging.getLogger("replayrec.serving")

DAY_S = 86_400
EXPERIMENT = "replay-eval"
#: evaluation arm → the service's arm name
ARMS = {
    "real_time": "prod",
    "nightly": "ab:nightly",
    "frozen": "ab:frozen",
    "popularity": "popularity",
    "item_cf": "ab:itemcf",
}
_ITEMCF = {
    "recall": {"k": 200, "channels": [{"type": "itemcf"}]},
    "rank": {"type": "passthrough", "k": 50},
    "rerank": {"type": "passthrough", "k": 10},
}


@dataclass(frozen=True)
class ReplayEvalRequest:
    """``users``: evaluated users, sampled (seeded) among those active both before and after the cut;
    each contributes its first ``max_events_per_user`` events after it. ``days``: only the first days of
    the window (None: all of it)."""

    users: int = 300
    max_events_per_user: int = 20
    days: float | None = None
    group_events: int = 1000
    item_cf: bool = True
    seed: int = 0
    k: int = 10
    n_boot: int = 1000
    concurrency: int = 4

    def check(self) -> None:
        if self.users < 1 or self.max_events_per_user < 1 or self.group_events < 1:
            raise ConfigError("--users, --max-events-per-user and the group size must be at least 1")
        if self.days is not None and not self.days > 0:
            raise ConfigError(f"--days must be positive, got {self.days}")
        if not 1 <= self.k <= 100:
            raise ConfigError(f"k must be in [1, 100], got {self.k}")


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass
class _Plan:
    schedule: Schedule
    evaluated: I64  # schedule positions of the evaluated events, in order
    users: list[str]  # the sampled users, sorted
    users_eligible: int
    repeats: int = 0  # evaluated events whose item the user already had (no arm excluding it can hit)
    index: dict[int, int] = field(init=False)  # schedule position → row of the evaluated event

    def __post_init__(self) -> None:
        self.index = {int(p): j for j, p in enumerate(self.evaluated.tolist())}


def _plan(system: LiveSystem, req: ReplayEvalRequest) -> _Plan:
    ds = system.dataset
    until = None if req.days is None else system.cut + req.days * DAY_S
    sched = build_schedule(ds, system.bus.event_partitions, float(system.cut), until)
    if not len(sched):
        raise ReplayrecError(f"no events after the cut {system.cut} to replay")
    inter = ds.interactions()
    before = inter.timestamp < system.cut
    raw = ds.users["raw_id"].astype(str).to_numpy()
    known = set(raw[np.unique(inter.user[before])].tolist())
    eligible = sorted({u for u in sched.users if u in known})
    if not eligible:
        raise ReplayrecError("no user is active both before and after the cut: nothing to evaluate")
    rng = np.random.default_rng(req.seed)
    pick = rng.choice(len(eligible), size=min(req.users, len(eligible)), replace=False)
    chosen = sorted(eligible[i] for i in pick.tolist())
    wanted, seen = set(chosen), dict.fromkeys(chosen, 0)
    had = _items_before(ds, raw, wanted, system.cut)
    positions, repeats = [], 0
    for i, (u, item) in enumerate(zip(sched.users, sched.items, strict=True)):
        if u not in wanted:
            continue
        if seen[u] < req.max_events_per_user:
            seen[u] += 1
            positions.append(i)
            repeats += item in had[u]
        had[u].add(item)
    return _Plan(sched, np.array(positions, dtype=np.int64), chosen, len(eligible), repeats)


def _items_before(ds: Any, raw_users: Any, users: set[str], cut: int) -> dict[str, set[str]]:
    """The raw item ids each of ``users`` had an event with before the cut."""
    ev = ds.events
    mask = ev["timestamp"].to_numpy() < cut
    item_raw = ds.items["raw_id"].astype(str).to_numpy()
    out: dict[str, set[str]] = {u: set() for u in users}
    for u, i in zip(
        raw_users[ev["user"].to_numpy()[mask]], item_raw[ev["item"].to_numpy()[mask]], strict=True
    ):
        if u in out:
            out[u].add(i)
    return out


def _groups(plan: _Plan, group_events: int) -> list[list[int]]:
    """Evaluated positions that can share one wait: within one day, at most ``group_events`` apart, and
    no user with an event between the group's first position and its own."""
    sched = plan.schedule
    days = (sched.times // DAY_S).astype(np.int64)
    last_seen: dict[str, int] = {}
    prev = {}
    for i, u in enumerate(sched.users):
        prev[i] = last_seen.get(u, -1)
        last_seen[u] = i
    groups: list[list[int]] = []
    for e in plan.evaluated.tolist():
        g = groups[-1] if groups else None
        if g is None or prev[e] >= g[0] or e - g[0] > group_events or days[e] != days[g[0]]:
            groups.append([e])
        else:
            g.append(e)
    return groups


class _Stepper:
    """Publishes the schedule in order up to a position, the way the replay controller does (same ids,
    bytes and partitions), waits for the stream job, and moves the replay clock the service reads."""

    def __init__(self, system: LiveSystem, sched: Schedule) -> None:
        self.system, self.s = system, sched
        self.publisher = EventPublisher(system.bus)
        self.clock = RedisStateStore(system.core.redis_url, system.core.bus_namespace)
        self.store = online_store(system.core, system.dataset)
        self.pos = 0
        self.freshness_ms: list[float] = []
        # where the log ends now (the history before the cut): the store has applied it all
        self.ends: dict[int, int] = wait_for_stream(system.core, self.store, timeout_s=300)

    def publish_to(self, hi: int) -> None:
        if hi <= self.pos:
            return
        rows = list(range(self.pos, hi))
        values = self.s.encode_many(rows)
        parts = self.s.partitions[self.pos : hi].tolist()
        futures = [
            self.publisher.send_encoded(self.s.users[i], v, (), p)
            for i, v, p in zip(rows, values, parts, strict=True)
        ]
        self.publisher.flush(timeout_s=60)
        failed = [f for f in futures if f.failed()]
        if failed:
            raise ReplayrecError(f"the broker refused {len(failed)} replayed event(s): {failed[0].exception}")
        t0 = time.perf_counter()
        for f in futures:  # the log positions the store must reach (acknowledged: no waiting here)
            md = f.get(timeout=0)
            self.ends[md.partition] = max(self.ends.get(md.partition, 0), md.offset + 1)
        self.pos = hi
        self._wait_applied(timeout_s=300)
        self.freshness_ms.append((time.perf_counter() - t0) * 1000)

    def _wait_applied(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pid_file = stream_dir(self.system.core) / "job.pid"
        n = 0
        while time.monotonic() < deadline:
            meta = self.store.meta()
            if meta is not None and all(meta.offsets.get(p, 0) >= e for p, e in self.ends.items()):
                return
            n += 1
            if n % 250 == 0 and read_pid(pid_file, expect="stream run") is None:
                raise ReplayrecError("the stream job has stopped (see its job.log)")
            time.sleep(0.02)
        raise ReplayrecError(f"the stream job did not apply the replayed events within {timeout_s:.0f} s")

    def set_clock(self, at: float) -> None:
        self.clock.publish(
            ReplayState(
                dataset=self.s.dataset, status="paused", clock=at, speed="max", updated_at=time.time(),
                position=self.pos, published=self.pos, total=len(self.s),
                range_from=self.s.range_from, range_until=self.s.range_until,
            )
        )  # fmt: skip

    def close(self) -> None:
        self.publisher.close(timeout_s=5)
        self.clock.close()


def _snapshot(live: OnlineFeatures, namespace: str, view: str, users: list[str], as_of_s: float) -> None:
    """The store view ``view`` := the live store now (the evaluated users' profiles and every item),
    standing for the moment ``as_of_s``: its arm answers as of then."""
    dest = OnlineFeatures(live.r, view_namespace(namespace, view), live.groups)
    live.copy_to(dest, users, as_of_ms=int(as_of_s * 1000))


def _experiment(system: LiveSystem, item_cf: bool) -> Experiment:
    layout = read_cascade_layout(system.settings.cascade or default_serving_cascade())
    arms = [
        ExperimentArm(name="nightly", weight=0, cascade=layout, features="nightly"),
        ExperimentArm(name="frozen", weight=0, cascade=layout, features="frozen"),
    ]
    if item_cf:
        arms.append(ExperimentArm(name="itemcf", weight=0, cascade=_ITEMCF))
    return Experiment(name=EXPERIMENT, salt=EXPERIMENT, arms=arms)


def _await_arms(
    client: httpx.Client, system: LiveSystem, names: list[str], timeout_s: float
) -> dict[str, Any]:
    """Every worker serves ``names`` (each worker answers ``/v1/arms`` for itself: ask a few times)."""
    deadline = time.monotonic() + timeout_s
    streak, body = 0, {}
    while time.monotonic() < deadline:
        # a new connection each time: each worker has its own socket, the kernel spreads connections
        body = client.get(f"{system.url}/v1/arms", headers={"Connection": "close"}).json()
        served = set(body.get("serving", {}).get("arms", {}))
        streak = streak + 1 if all(n in served for n in names) else 0
        if streak >= 4 * system.settings.workers:
            return dict(body)
        time.sleep(0.5)
    raise ReplayrecError(f"the service did not load the evaluation arms {names} within {timeout_s:.0f} s")


def _ask(client: httpx.Client, system: LiveSystem, user: str, arm: str, k: int) -> tuple[list[str], bool]:
    headers = {"Authorization": f"Bearer {system.token}", "Cache-Control": "no-cache"}
    deadline, failures = time.monotonic() + 120, 0
    while True:
        r = client.get(
            f"{system.url}/v1/recommendations/{user}", params={"k": k, "arm": arm}, headers=headers
        )
        if r.status_code == 200:
            body = r.json()
            return [row["item"] for row in body["items"]], bool(body.get("degraded"))
        loading = r.status_code == 422 and "not served here" in r.text  # a worker still loading the arm
        failures += r.status_code >= 500
        retry = loading or (r.status_code >= 500 and failures < 3)
        if not retry or time.monotonic() > deadline:
            raise ReplayrecError(f"the service answered {r.status_code} for {user} on {arm}: {r.text[:300]}")
        time.sleep(0.5)


def evaluate_replay(
    system: LiveSystem, req: ReplayEvalRequest, say: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Run the replay evaluation on a running system (see the module docstring); the result as JSON."""
    req.check()
    t0 = time.perf_counter()
    plan = _plan(system, req)
    groups = _groups(plan, req.group_events)
    arms = {a: s for a, s in ARMS.items() if req.item_cf or a != "item_cf"}
    say(
        f"replay evaluation: {plan.evaluated.size:,} events of {len(plan.users)} users (of "
        f"{plan.users_eligible:,} active before and after the cut) in {len(groups)} steps; "
        f"arms {', '.join(arms)}"
    )
    ranks = {a: np.zeros(plan.evaluated.size, dtype=np.int64) for a in arms}
    degraded = dict.fromkeys(arms, 0)
    with contextlib.ExitStack() as stack:
        client = redis.Redis.from_url(system.core.redis_url)
        stack.callback(client.close)
        experiments = ExperimentStore(client, system.core.bus_namespace)
        stack.callback(experiments.clear)  # the evaluation's arms go when it ends, however it ends
        stepper = _Stepper(system, plan.schedule)
        stack.callback(stepper.close)
        ns = system.core.bus_namespace
        _snapshot(stepper.store, ns, "frozen", plan.users, system.cut)
        _snapshot(stepper.store, ns, "nightly", plan.users, system.cut)
        experiments.set(_experiment(system, req.item_cf))
        http = stack.enter_context(httpx.Client(timeout=60))
        pool = ThreadPoolExecutor(req.concurrency)
        stack.callback(pool.shutdown, wait=False, cancel_futures=True)  # an error does not wait for the rest
        served = _await_arms(http, system, [s for s in arms.values() if s.startswith("ab:")], 900)
        ask = functools.partial(_ask_group, http, pool, system, plan, arms=arms, k=req.k, ranks=ranks,
                                degraded=degraded)  # fmt: skip
        _steps(stepper, plan, groups, ns, ask, say, t0)
    out = _result(system, plan, req, groups, ranks, degraded, stepper.freshness_ms, time.perf_counter() - t0)
    out["served"] = {
        a: served.get("serving", {}).get("arms", {}).get(s, {}).get("versions") for a, s in arms.items()
    }
    return out


def _steps(
    stepper: _Stepper,
    plan: _Plan,
    groups: list[list[int]],
    ns: str,
    ask: Callable[[list[int]], None],
    say: Callable[[str], None],
    t0: float,
) -> None:
    """Publish, wait, set the clock, ask — step by step; the nightly snapshot at every midnight."""
    times = plan.schedule.times
    night = int(times[0] // DAY_S)
    for n, group in enumerate(groups):
        day = int(times[group[0]] // DAY_S)
        if day != night:  # midnight: publish up to the day's first event, then the nightly batch
            stepper.publish_to(int(np.searchsorted(times, day * DAY_S, side="left")))
            _snapshot(stepper.store, ns, "nightly", plan.users, day * DAY_S)
            night = day
        stepper.publish_to(group[0])
        stepper.set_clock(float(times[group[0]]) - 0.001)
        time.sleep(0.25)  # each worker re-reads the replay clock at most every 200 ms
        ask(group)
        if n % 50 == 49:
            say(f"  {n + 1}/{len(groups)} steps, {time.perf_counter() - t0:.0f} s")
    stepper.publish_to(len(plan.schedule))  # the rest of the window: the store ends where the window ends


def _ask_group(
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    system: LiveSystem,
    plan: _Plan,
    group: list[int],
    arms: dict[str, str],
    k: int,
    ranks: dict[str, I64],
    degraded: dict[str, int],
) -> None:
    sched = plan.schedule
    index = plan.index
    jobs = [
        (e, a, pool.submit(_ask, client, system, sched.users[e], s, k))
        for e in group
        for a, s in arms.items()
    ]
    for e, a, fut in jobs:
        items, was_degraded = fut.result()
        target = sched.items[e]
        ranks[a][index[e]] = items.index(target) + 1 if target in items else 0
        degraded[a] += int(was_degraded)


def _result(
    system: LiveSystem,
    plan: _Plan,
    req: ReplayEvalRequest,
    groups: list[list[int]],
    ranks: dict[str, I64],
    degraded: dict[str, int],
    freshness_ms: list[float],
    seconds: float,
) -> dict[str, Any]:
    sched = plan.schedule
    users = np.array([sched.users[e] for e in plan.evaluated.tolist()])
    _, user_idx = np.unique(users, return_inverse=True)
    n_users = int(user_idx.max()) + 1 if user_idx.size else 0
    counts = np.bincount(user_idx, minlength=n_users).astype(np.float64)
    hits: dict[str, F64] = {}
    gains: dict[str, F64] = {}
    for a, r in ranks.items():
        hits[a] = np.bincount(user_idx, weights=(r > 0).astype(np.float64), minlength=n_users).astype(
            np.float64
        )
        gain = np.where(r > 0, 1.0 / np.log2(np.maximum(r, 1) + 1.0), 0.0)
        gains[a] = np.bincount(user_idx, weights=gain, minlength=n_users).astype(np.float64)
    per_user = {f"{a}:hr": hits[a] / counts for a in ranks} | {f"{a}:ndcg": gains[a] / counts for a in ranks}
    cis = bootstrap_ci(per_user, dict.fromkeys(per_user, counts), n_boot=req.n_boot, seed=req.seed)
    out_arms = {
        a: {
            f"hr@{req.k}": float(hits[a].sum() / counts.sum()),
            f"ndcg@{req.k}": float(gains[a].sum() / counts.sum()),
            "ci": {f"hr@{req.k}": list(cis[f"{a}:hr"]), f"ndcg@{req.k}": list(cis[f"{a}:ndcg"])},
            "service_arm": ARMS[a],
            "degraded_answers": degraded[a],
        }
        for a in ranks
    }
    ratios = {}
    for other in ("frozen", "nightly", "popularity", "item_cf"):
        if other in ranks:
            for metric, values in ((f"hr@{req.k}", hits), (f"ndcg@{req.k}", gains)):
                point, lo, hi = paired_ratio(
                    values["real_time"], values[other], n_boot=req.n_boot, seed=req.seed
                )
                ratios[f"real_time/{other}:{metric}"] = {"ratio": point, "ci": [lo, hi]}
    fresh = np.array(freshness_ms) if freshness_ms else np.zeros(1)
    hr = f"hr@{req.k}"
    out = {
        "dataset": system.dataset.name,
        "cut": system.cut,
        "cut_date": datetime.fromtimestamp(system.cut, UTC).date().isoformat(),
        "window": {
            "from": sched.range_from,
            "until": sched.range_until,
            "events_replayed": len(sched),
            "days": round(float(sched.times[-1] - sched.times[0]) / DAY_S, 2),
        },
        "sampling": f"{len(plan.users)} of {plan.users_eligible} users active before and after the cut "
        f"(seed {req.seed}), each with its first {req.max_events_per_user} events after it"
        + ("" if req.days is None else f" within {req.days:g} days"),
        "repeat_targets": plan.repeats,
        "n_users": len(plan.users),
        "n_events": int(plan.evaluated.size),
        "k": req.k,
        "arms": out_arms,
        "ratio_real_time_over_frozen": ratios["real_time/frozen:" + hr]["ratio"],
        "ratio_real_time_over_nightly": ratios["real_time/nightly:" + hr]["ratio"],
        "ratio_metric": hr,
        "ratios": ratios,
        "freshness_p50_ms": float(np.percentile(fresh, 50)),
        "freshness_p95_ms": float(np.percentile(fresh, 95)),
        "freshness_max_ms": float(fresh.max()),
        "freshness": "per step: the step's replayed events acknowledged by the broker → applied in the "
        "online store (the run waits for it before asking)",
        "steps": len(groups),
        "models": system.models,
        "seed": req.seed,
        "seconds": round(seconds, 1),
    }
    return cast(dict[str, Any], _finite(out))


def _finite(value: Any) -> Any:
    """NaN and infinities as ``null`` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def format_replay_eval(res: dict[str, Any]) -> str:
    """The result as a table (what ``replayrec replay evaluate`` prints without ``--json``)."""
    k = res["k"]
    hr, nd = f"hr@{k}", f"ndcg@{k}"
    lines = [
        f"replay evaluation on {res['dataset']}: cut {res['cut_date']}, "
        f"{res['window']['events_replayed']:,} events replayed over {res['window']['days']} days; "
        f"{res['n_events']:,} evaluated ({res['sampling']})",
        "",
        f"| arm | HR@{k} | 95% CI | NDCG@{k} | 95% CI | degraded |",
        "|---|---:|---|---:|---|---:|",
    ]
    for name, a in res["arms"].items():
        ci_h, ci_n = a["ci"][hr], a["ci"][nd]
        lines.append(
            f"| {name} | {a[hr]:.4f} | [{ci_h[0]:.4f}, {ci_h[1]:.4f}] | {a[nd]:.4f} | "
            f"[{ci_n[0]:.4f}, {ci_n[1]:.4f}] | {a['degraded_answers']} |"
        )
    lines.append("")
    for key, r in res["ratios"].items():
        if key.endswith(hr):
            lo, hi = (f"{x:.3f}" if x is not None else "–" for x in r["ci"])
            ok = (
                "undefined (no hit in the baseline)"
                if r["ratio"] is None
                else f"{r['ratio']:.3f}× [{lo}, {hi}]"
            )
            lines.append(f"{key.split(':')[0]} on HR@{k}: {ok}")
    lines.append(
        "freshness (replayed events acknowledged → in the online store): "
        f"p50 {res['freshness_p50_ms']:.0f} ms, p95 {res['freshness_p95_ms']:.0f} ms "
        f"over {res['steps']} steps; "
        f"{res['repeat_targets']} of the targets were items the user already had; {res['seconds']:.0f} s"
    )
    return "\n".join(lines)
