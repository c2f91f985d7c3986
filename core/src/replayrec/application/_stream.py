"""Stream operations: the Spark job that keeps the online feature store (foreground or detached), its status,
stop and reset, the online store's reads, and the stream benchmark."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from replayrec.application._bus import _a_broker, settings_env
from replayrec.application._datasets import open_dataset
from replayrec.bus import (
    BusConfig,
    EventPublisher,
    RedisStateStore,
    broker_reachable,
    build_schedule,
    clock_now,
    delete_topics,
    encode_fields,
    ensure_topics,
    high_watermarks,
    make_reader,
)
from replayrec.config import Settings
from replayrec.data import Dataset
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.features import OnlineFeatures
from replayrec.runtime import PidLock, pid_alive, read_pid, spawn, stop_process, wait_started
from replayrec.stream import BatchReport, FeatureSink, JobOptions, run_job

__all__ = [
    "StreamRequest",
    "online_store",
    "run_stream",
    "stream_dir",
    "stream_reset",
    "stream_start_detached",
    "stream_status",
    "stream_stop",
    "wait_for_stream",
]

log = logging.getLogger("replayrec")


@dataclass(frozen=True)
class StreamRequest:
    dataset: str | None = None
    trigger_ms: int = 500
    max_records: int = 20_000
    metrics_port: int | None = 9466


def stream_dir(settings: Settings) -> Path:
    return settings.state_dir / "stream" / settings.bus_namespace


def _check(req: StreamRequest) -> None:
    if not 50 <= req.trigger_ms <= 60_000:
        raise ConfigError(f"--trigger-ms {req.trigger_ms}: must be 50–60000")
    if not 100 <= req.max_records <= 1_000_000:
        raise ConfigError(f"--max-records {req.max_records}: must be 100–1000000")
    if req.metrics_port is not None and not 0 < req.metrics_port < 65536:
        raise ConfigError(f"metrics port {req.metrics_port}: must be 1–65535")


def online_store(settings: Settings, dataset: Dataset) -> OnlineFeatures:
    """The online feature store of this namespace, for ``dataset``'s catalogue."""
    return OnlineFeatures.connect(settings.redis_url, settings.bus_namespace, dataset.catalog.groups)


def _options(settings: Settings, ds: Dataset, req: StreamRequest) -> JobOptions:
    items = {str(r): int(i) for i, r in zip(ds.items["item"], ds.items["raw_id"], strict=True)}
    return JobOptions(
        bus=BusConfig.from_settings(settings), redis_url=settings.redis_url, folder=stream_dir(settings),
        item_index=items, groups=ds.catalog.groups, catalog=ds.fingerprint, trigger_ms=req.trigger_ms,
        max_records=req.max_records, metrics_port=req.metrics_port, metrics_host=settings.metrics_host,
    )  # fmt: skip


def _require_services(settings: Settings) -> None:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ReplayrecError("the stream job runs Spark, which needs a JDK 17: no java on PATH, no JAVA_HOME")
    cfg = BusConfig.from_settings(settings)
    if not broker_reachable(cfg):
        raise ReplayrecError(f"no Kafka broker at {cfg.bootstrap_servers} (start one: replayrec bus start)")
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise ReplayrecError(f"Redis at {settings.redis_url} does not answer ({exc})") from None
    ensure_topics(cfg)


def run_stream(settings: Settings, req: StreamRequest, stop: threading.Event | None = None) -> int:
    """Run the streaming job in the foreground until ``stop`` (or SIGTERM / Ctrl-C); one per namespace."""
    _check(req)
    folder = stream_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with PidLock(folder / "job.pid", "a stream job (replayrec stream stop)"):
        _require_services(settings)
        ds = open_dataset(settings, req.dataset)
        return run_job(_options(settings, ds, req), stop)


def stream_start_detached(settings: Settings, req: StreamRequest, timeout_s: float = 120.0) -> int:
    """Start the job in the background (its own process group: the driver and its JVM); its pid once the
    streaming query runs."""
    _check(req)
    folder = stream_dir(settings)
    if (other := read_pid(folder / "job.pid", expect="stream run")) is not None:
        raise ReplayrecError(f"a stream job is already running (pid {other}); replayrec stream stop")
    _require_services(settings)
    argv = [sys.executable, "-m", "replayrec", "stream", "run", "--trigger-ms", str(req.trigger_ms),
            "--max-records", str(req.max_records)]  # fmt: skip
    if req.dataset is not None:
        argv += ["--dataset", req.dataset]
    argv += ["--metrics-port", str(req.metrics_port)] if req.metrics_port is not None else ["--no-metrics"]
    status = folder / "job.json"
    folder.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)
    proc = spawn(argv, folder / "job.log", env=settings_env(settings))
    running = lambda: _job_state(folder).get("state") == "running"  # noqa: E731
    return wait_started(proc, folder / "job.log", running, "the stream job", timeout_s)


def _job_state(folder: Path) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads((folder / "job.json").read_text())
    except (OSError, ValueError):
        return {}
    return out


def stream_stop(settings: Settings, timeout_s: float = 30.0) -> int | None:
    """Stop the job (SIGTERM: the query stops after its batch; then its whole process group, JVM included);
    the pid it had, ``None`` when none ran."""
    folder = stream_dir(settings)
    pid = read_pid(folder / "job.pid", expect="stream run")
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the driver first: it stops the query and Spark, which ends the JVM
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if not stop_process(pid, 10.0):
        raise ReplayrecError(f"stream job pid {pid} did not stop")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # whatever is left of its process group (a lingering JVM)
    (folder / "job.pid").unlink(missing_ok=True)
    return pid


def stream_status(settings: Settings, dataset: str | None = None) -> dict[str, Any]:
    """The job (running?, last batch) and the store (epoch, status, position, lag)."""
    folder = stream_dir(settings)
    pid = read_pid(folder / "job.pid", expect="stream run")
    job = _job_state(folder)
    out: dict[str, Any] = {
        "namespace": settings.bus_namespace, "running": pid is not None and pid_alive(pid), "pid": pid,
        "job": job.get("state"), "batches": job.get("batches"), "last_batch": job.get("last"), "store": None,
        "lag": None,
    }  # fmt: skip
    try:
        ds = open_dataset(settings, dataset)
        meta = online_store(settings, ds).meta()
    except (redis.RedisError, ReplayrecError) as exc:
        out["store_error"] = str(exc)
        return out
    if meta is not None:
        out["store"] = meta.as_dict()
        cfg = BusConfig.from_settings(settings)
        if broker_reachable(cfg):
            consumer = make_reader(cfg)
            try:
                ends = high_watermarks(consumer, cfg.events_topic)
            finally:
                consumer.close()
            out["lag"] = sum(max(e - meta.offsets.get(p, 0), 0) for p, e in ends.items())
    return out


def stream_reset(settings: Settings, dataset: str | None = None) -> dict[str, Any]:
    """Delete the online store of this namespace and the job's checkpoint (the next run starts from the
    beginning of the log). Refused while the job runs."""
    folder = stream_dir(settings)
    if (pid := read_pid(folder / "job.pid", expect="stream run")) is not None:
        raise ReplayrecError(f"the stream job is running (pid {pid}): replayrec stream stop first")
    ds = open_dataset(settings, dataset)
    keys = online_store(settings, ds).clear()
    had = (folder / "checkpoint").exists()
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    return {"namespace": settings.bus_namespace, "keys_deleted": keys, "checkpoint_deleted": had}


def online_profile(settings: Settings, user: str | None, dataset: str | None = None) -> dict[str, Any]:
    """A user's online profile, with the store's status (serving's view of it), its interest as of the replay
    clock when a replay ran (else now); ``user`` ``None``: the dataset's most active user."""
    ds = open_dataset(settings, dataset)
    if user is None:
        counts = ds.events["user"].value_counts()
        top = int(counts.index[0]) if len(counts) else 0
        user = str(ds.users.set_index("user")["raw_id"].loc[top])
    store = online_store(settings, ds)
    meta = store.meta()
    if meta is None:
        raise ReplayrecError(f"no online store in namespace {settings.bus_namespace} (replayrec stream run)")
    replay = RedisStateStore(settings.redis_url, settings.bus_namespace)
    try:
        state = replay.read()
    finally:
        replay.close()
    at_ms = int(clock_now(state) * 1000) if state is not None else None  # "now" is the replay clock's
    prof = store.profile(user, at_ms).as_dict()
    prof["as_of_ms"] = at_ms
    recent: list[dict[str, Any]] = prof["recent"]  # type: ignore[assignment]
    prof["items"] = [str(ds.catalog.raw_ids[r["item"]]) for r in recent]
    prof["titles"] = [ds.catalog.title(int(r["item"])) for r in recent]
    return {"store": meta.status, **prof}


# -- the benchmark ----------------------------------------------------------------------------------------
def _quantiles(hist: dict[int, int]) -> dict[str, float | None]:
    if not hist:
        return {f"freshness_p{q}_ms": None for q in (50, 95, 99)}
    edges = sorted(hist)
    counts = [hist[e] for e in edges]
    total = sum(counts)
    out: dict[str, float | None] = {}
    for q in (50, 95, 99):
        need, acc = q / 100 * total, 0
        for e, c in zip(edges, counts, strict=True):
            acc += c
            if acc >= need:
                out[f"freshness_p{q}_ms"] = float(e + HIST_MS)  # the bucket's upper edge
                break
    return out


def _batches(folder: Path, since: float) -> list[dict[str, Any]]:
    rows = []
    path = folder / "batches.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["at"] >= since and row["outcome"] == "applied":
                rows.append(row)
    return rows


def wait_for_stream(settings: Settings, store: OnlineFeatures, timeout_s: float = 120.0) -> dict[int, int]:
    """Block until the store has applied everything on the events topic now (its high watermarks); those
    offsets. :class:`ReplayrecError` after ``timeout_s``."""
    cfg = BusConfig.from_settings(settings)
    consumer = make_reader(cfg)
    try:
        ends = high_watermarks(consumer, cfg.events_topic)
    finally:
        consumer.close()
    deadline = time.monotonic() + timeout_s
    pid_file = stream_dir(settings) / "job.pid"
    while time.monotonic() < deadline:
        meta = store.meta()
        if meta is not None and meta.ready and all(meta.offsets.get(p, 0) >= e for p, e in ends.items()):
            return ends
        if pid_file.is_file() and read_pid(pid_file, expect="stream run") is None:
            why = _job_state(stream_dir(settings)).get("error") or "see its job.log"
            raise ReplayrecError(f"the stream job has stopped: {why}")
        time.sleep(0.1)
    raise ReplayrecError(f"the stream job did not catch up with {ends} within {timeout_s:.0f} s")


class _LiveEvents:
    """Live-style events (the dataset's users, items and actions in order, event time = send time)."""

    def __init__(self, ds: Dataset, partitions: int) -> None:
        self.s = build_schedule(ds, partitions)
        self.i = 0

    def send(self, pub: Any, n: int) -> None:
        now = time.time()
        s = self.s
        for _ in range(n):
            j = self.i % len(s)
            value = encode_fields(
                f"bench:{self.i}", s.users[j], s.items[j], s.actions[j], s.ratings[j], now, "live"
            )
            pub.send_encoded(s.users[j], value, partition=int(s.partitions[j]))
            self.i += 1


def bench_stream(
    settings: Settings, name: str | None, rate: int = 2000, seconds: int = 300, backlog: int = 200_000
) -> dict[str, Any]:
    """Freshness at a steady ``rate`` for ``seconds`` (after a 10 s warm-up), then the drain rate of a
    ``backlog`` produced while the job was stopped; beside them, the same backlog through the sink alone (no
    Spark: the store's own write rate). Starts a broker when none answers; stops everything it started."""
    if rate < 1 or seconds < 1 or backlog < 1:
        raise ConfigError("--rate, --seconds and --backlog must be positive")
    ds = open_dataset(settings, name)
    with _a_broker(settings) as b:
        s = b.model_copy(update={"bus_namespace": f"bench-stream-{os.getpid()}"})
        shared = s.state_dir / "datasets"  # the job opens the prepared data where the settings say
        if s.state_dir != settings.state_dir and not shared.exists():
            s.state_dir.mkdir(parents=True, exist_ok=True)
            shared.symlink_to((settings.state_dir / "datasets").resolve(), target_is_directory=True)
        cfg = BusConfig.from_settings(s)
        ensure_topics(cfg)
        store = online_store(s, ds)
        req = StreamRequest(name, metrics_port=None)
        live = _LiveEvents(ds, cfg.event_partitions)
        pub = EventPublisher(cfg)
        try:
            t_job = time.time()
            stream_start_detached(s, req)
            started = time.time() - t_job
            warm, t0 = 10.0, time.monotonic()
            t_measure = time.time() + warm
            tick = 0.02
            per_tick = rate * tick
            sent = 0.0
            while (elapsed := time.monotonic() - t0) < seconds + warm:
                due = int(elapsed * rate) - int(sent)
                if due > 0:
                    live.send(pub, due)
                    sent += due
                time.sleep(max(tick - (time.monotonic() - t0 - elapsed), 0.0) if per_tick else tick)
            pub.flush()
            t_end = time.time()
            wait_for_stream(s, store, 120)
            steady = [r for r in _batches(stream_dir(s), t_measure) if r["at"] <= t_end + 5]
            hist: dict[int, int] = {}
            for r in steady:
                for k, v in r["freshness_hist"].items():
                    hist[int(k)] = hist.get(int(k), 0) + v
            stream_stop(s)
            live.send(pub, backlog)
            pub.flush()
            t_restart = time.time()
            stream_start_detached(s, req)
            wait_for_stream(s, store, 600)
            drain = _batches(stream_dir(s), t_restart)
            stream_stop(s)
            sink_rate = _sink_only(s, ds, cfg)
        finally:
            stream_stop(s)
            pub.close()
            store.clear()
            delete_topics(cfg)
            shutil.rmtree(stream_dir(s), ignore_errors=True)
    first, last = drain[0], drain[-1]
    steady_rate = sum(r["applied"] for r in steady) / max(t_end - t_measure, 1e-9)
    return {
        "dataset": ds.name,
        "rate": rate,
        "seconds": seconds,
        "steady_events": sum(hist.values()),
        "steady_applied_per_s": round(steady_rate),
        **_quantiles(hist),
        "backlog": backlog,
        "drain_per_s": round((backlog - first["applied"]) / max(last["at"] - first["at"], 1e-9)),
        "drain_with_start_per_s": round(backlog / max(last["at"] - t_restart, 1e-9)),
        "drain_batches": len(drain),
        "job_start_s": round(started, 1),
        "baseline_sink_only_per_s": round(sink_rate),
        "aim": {"freshness_p95_ms": 1500, "drain_per_s": 15000},
        "notes": (
            "2 cores shared by the broker, Redis, the Spark job and this producer; drain_per_s excludes the "
            "first batch after the restart (Spark's warm-up), drain_with_start_per_s includes the job's "
            "start; baseline_sink_only_per_s: the backlog through the sink without Spark"
        ),
    }


def _sink_only(s: Settings, ds: Dataset, cfg: BusConfig) -> float:
    """The whole topic applied by the sink in-process (catch-up path, no Spark) into a scratch namespace."""
    scratch = online_store(s.model_copy(update={"bus_namespace": s.bus_namespace + "-sink"}), ds)
    items = {str(r): int(i) for i, r in zip(ds.items["item"], ds.items["raw_id"], strict=True)}
    sink = FeatureSink(scratch, cfg, items, ds.fingerprint)
    consumer = make_reader(cfg)
    try:
        ends = high_watermarks(consumer, cfg.events_topic)
        meta = scratch.initialise(ds.fingerprint)
        t0 = time.perf_counter()
        sink.catch_up(meta, ends, BatchReport(-1))
        return sum(ends.values()) / (time.perf_counter() - t0)
    finally:
        consumer.close()
        sink.close()
        scratch.clear()


HIST_MS = 5
