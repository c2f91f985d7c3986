"""Bus operations: the embedded broker's lifecycle, the replay controller (foreground or detached) and the
commands that steer it, live ingest, the bus benchmark."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayrec.application._datasets import open_dataset
from replayrec.bus import (
    BrokerHandle,
    BusConfig,
    BusMetrics,
    EventPublisher,
    EventReader,
    IngestResult,
    RedisStateStore,
    ReplayController,
    ReplayNotRunningError,
    ReplayState,
    Schedule,
    broker_reachable,
    broker_status,
    build_schedule,
    clock_now,
    delete_topics,
    ensure_topics,
    format_time,
    make_producer,
    parse_speed,
    parse_when,
    read_state,
    send_command,
    start_broker,
    stop_broker,
)
from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.runtime import (
    PidLock,
    free_port,
    pid_alive,
    read_pid,
    serve_metrics,
    spawn,
    stop_process,
    wait_started,
)

__all__ = [
    "ReplayRequest",
    "bench_bus",
    "bus_start",
    "bus_status",
    "bus_stop",
    "ingest_events",
    "replay_command",
    "replay_start_detached",
    "replay_status",
    "replay_stop",
    "run_replay",
    "settings_env",
]

log = logging.getLogger("replayrec.application")


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``REPLAYREC_*`` variables, for the processes we start."""
    return {
        "REPLAYREC_STATE_DIR": str(settings.state_dir),
        "REPLAYREC_DATA_DIR": str(settings.data_dir),
        "REPLAYREC_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REPLAYREC_BUS_NAMESPACE": settings.bus_namespace,
        "REPLAYREC_EVENT_PARTITIONS": str(settings.event_partitions),
        "REPLAYREC_REDIS_URL": settings.redis_url,
        "REPLAYREC_SEED": str(settings.seed),
    }


# -- broker ------------------------------------------------------------------------------------------
def bus_start(settings: Settings) -> BrokerHandle:
    """Start the embedded broker (detached: it runs until ``bus_stop``) and create the topics."""
    return start_broker(settings)


def bus_stop(settings: Settings) -> int | None:
    return stop_broker(settings)


def bus_status(settings: Settings) -> dict[str, Any]:
    return broker_status(settings)


# -- replay ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayRequest:
    dataset: str | None = None
    start: str | None = None  # --from
    until: str | None = None
    speed: str = "86400"
    metrics_port: int | None = 9465
    chunk: int = 5000
    resume: bool = True


def _replay_dir(settings: Settings) -> Path:
    return settings.state_dir / "replay"


def _check_request(req: ReplayRequest) -> float:
    try:
        speed = parse_speed(req.speed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if req.chunk < 1:
        raise ConfigError("chunk must be >= 1")
    if req.metrics_port is not None and not 0 < req.metrics_port < 65536:
        raise ConfigError(f"metrics port {req.metrics_port}: must be 1–65535")
    return speed


def run_replay(
    settings: Settings,
    req: ReplayRequest,
    stop: threading.Event | None = None,
    on_state: Callable[[ReplayState], None] | None = None,
) -> ReplayState:
    """Replay ``req.dataset`` in the foreground until it is done or ``stop`` is set."""
    speed = _check_request(req)
    folder = _replay_dir(settings)
    with PidLock(folder / "controller.pid", "a replay controller (replayrec replay stop)"):
        return _replay_locked(settings, req, speed, stop, on_state)


def _replay_locked(
    settings: Settings,
    req: ReplayRequest,
    speed: float,
    stop: threading.Event | None,
    on_state: Callable[[ReplayState], None] | None,
) -> ReplayState:
    folder = _replay_dir(settings)
    cfg = BusConfig.from_settings(settings)
    if not broker_reachable(cfg):
        raise ReplayrecError(f"no Kafka broker at {cfg.bootstrap_servers} (start one: replayrec bus start)")
    ds = open_dataset(settings, req.dataset)
    schedule = build_schedule(ds, cfg.event_partitions, parse_when(req.start), parse_when(req.until))
    ensure_topics(cfg)
    metrics = BusMetrics()
    store = RedisStateStore(settings.redis_url, cfg.namespace)
    controller = ReplayController(
        cfg, schedule, speed, state_path=folder / "state.json", store=store, metrics=metrics,
        chunk=req.chunk, resume=req.resume,
    )  # fmt: skip
    if stop is not None:
        controller.stop_requested = stop
    server = serve_metrics(metrics.registry, req.metrics_port, "replay", settings.metrics_host)
    log.info(
        f"replaying {len(schedule):,} events of {schedule.dataset} at speed {req.speed} "
        f"({controller.already:,} already on the log)"
    )
    try:
        return controller.run(on_state)
    finally:
        store.close()
        if server is not None:
            server.shutdown()
            server.server_close()


def replay_start_detached(settings: Settings, req: ReplayRequest, timeout_s: float = 120.0) -> int:
    """Start the controller as a background process (``replay start`` without ``--detach``), return its pid
    once it publishes its first state."""
    _check_request(req)
    folder = _replay_dir(settings)
    if (other := read_pid(folder / "controller.pid", expect="replay start")) is not None:
        raise ReplayrecError(f"a replay controller is already running (pid {other}); replayrec replay stop")
    argv = [
        sys.executable,
        "-m",
        "replayrec",
        "replay",
        "start",
        "--speed",
        req.speed,
        "--chunk",
        str(req.chunk),
    ]
    for flag, value in (("--dataset", req.dataset), ("--from", req.start), ("--until", req.until)):
        if value is not None:
            argv += [flag, value]
    argv += ["--metrics-port", str(req.metrics_port)] if req.metrics_port is not None else ["--no-metrics"]
    if not req.resume:
        argv.append("--fresh")
    state_file = folder / "state.json"
    before = state_file.stat().st_mtime if state_file.is_file() else 0.0
    proc = spawn(argv, folder / "controller.log", env=settings_env(settings))
    published = lambda: state_file.is_file() and state_file.stat().st_mtime > before  # noqa: E731
    return wait_started(proc, folder / "controller.log", published, "the replay controller", timeout_s)


def replay_command(settings: Settings, command: str, value: str | None = None) -> ReplayState:
    """``pause`` / ``resume`` / ``seek DATE`` / ``speed S`` / ``stop``, acknowledged by the controller."""
    arg: Any = None
    try:
        if command == "seek":
            arg = parse_when(value)
            if arg is None:
                raise ConfigError("seek needs a date (YYYY-MM-DD, ISO 8601 or Unix seconds)")
        elif command == "speed":
            s = parse_speed(value or "")
            arg = "max" if s == float("inf") else s
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not replay_status(settings)["running"]:
        raise ReplayNotRunningError(
            f"no replay controller is running in namespace {settings.bus_namespace} "
            "(start one: replayrec replay start --detach)"
        )
    return send_command(BusConfig.from_settings(settings), command, arg)


def replay_stop(settings: Settings, timeout_s: float = 15.0) -> ReplayState | None:
    """Stop the running controller (the ``stop`` command; SIGTERM to a local one that does not answer)."""
    pid = read_pid(_replay_dir(settings) / "controller.pid", expect="replay start")
    try:
        state = send_command(BusConfig.from_settings(settings), "stop", timeout_s=5.0)
    except (ReplayNotRunningError, ReplayrecError):
        state = None
    if pid is not None:
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            stop_process(pid)
    return state


def replay_status(settings: Settings) -> dict[str, Any]:
    """The controller's last published state, where it was read from, and the clock now."""
    cfg = BusConfig.from_settings(settings)
    store = RedisStateStore(settings.redis_url, cfg.namespace)
    try:
        state, source = read_state(cfg, store, _replay_dir(settings) / "state.json")
    finally:
        store.close()
    pid = read_pid(_replay_dir(settings) / "controller.pid", expect="replay start")
    if state is None:
        return {"running": False, "source": source, "state": None}
    now = clock_now(state)
    alive = pid is not None or (
        state.status not in ("finished", "stopped") and time.time() - state.updated_at < 5
    )
    return {
        "running": bool(alive),
        "pid": pid,
        "source": source,
        "clock": now,
        "clock_iso": format_time(now),
        "state": state.model_dump(mode="json"),
    }


# -- live ingest -------------------------------------------------------------------------------------
def ingest_events(settings: Settings, payloads: list[Any]) -> IngestResult:
    """Validate and produce shop events (``source: live``); refused ones go to the dead-letter topic."""
    publisher = EventPublisher(BusConfig.from_settings(settings))
    try:
        return publisher.ingest(payloads)
    finally:
        publisher.close()


# -- benchmark ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _a_broker(settings: Settings) -> Iterator[Settings]:
    """The configured broker when it answers; otherwise an embedded one on a free port, stopped after."""
    cfg = BusConfig.from_settings(settings)
    if broker_reachable(cfg):
        yield settings
        return
    port = free_port()
    temp = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
    temp = temp.model_copy(update={"state_dir": settings.state_dir / "bench-bus"})
    log.info(f"no broker at {cfg.bootstrap_servers}; starting one on 127.0.0.1:{port} for the benchmark")
    with start_broker(temp):
        yield temp


@contextlib.contextmanager
def _pinned_to_one_core() -> Iterator[int | None]:
    """This process (and the producer's I/O thread) on one CPU; the broker keeps the others."""
    try:
        before = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        yield None
        return
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def _raw_rate(cfg: BusConfig, schedule: Schedule) -> float:
    """The client's ceiling: the same encoded events through a bare kafka-python producer (same settings),
    send + flush, no controller."""
    values = schedule.encode_many(range(len(schedule)))
    keys = [u.encode() for u in schedule.users]
    parts = schedule.partitions.tolist()
    producer = make_producer(cfg)
    send, topic = producer.send, cfg.events_topic
    t0 = time.perf_counter()
    for k, v, p in zip(keys, values, parts, strict=True):
        send(topic, value=v, key=k, partition=p)
    producer.flush()
    elapsed = time.perf_counter() - t0
    producer.close()
    return len(values) / elapsed


def bench_bus(
    settings: Settings, name: str | None, repeat: int = 3, limit: int | None = None
) -> dict[str, Any]:
    """Replay every event of the dataset at max speed through the real controller (one core), then read
    them back with the bus reader (decoded and validated); beside it, the same events through a bare
    producer. Medians over ``repeat`` runs, each on fresh topics (deleted after)."""
    if repeat < 1:
        raise ConfigError("--repeat must be >= 1")
    ds = open_dataset(settings, name)
    runs: list[dict[str, float]] = []
    embedded = not broker_reachable(BusConfig.from_settings(settings))
    with _a_broker(settings) as s:
        schedule = build_schedule(ds, s.event_partitions)
        if limit is not None:
            schedule = schedule.head(limit)
        for r in range(repeat):
            cfg = BusConfig(s.bootstrap_servers, f"bench-{os.getpid()}-{r}", s.event_partitions)
            raw = BusConfig(s.bootstrap_servers, f"bench-raw-{os.getpid()}-{r}", s.event_partitions)
            ensure_topics(cfg)
            ensure_topics(raw)
            try:
                runs.append(_bench_run(s, cfg, raw, schedule))
            finally:
                delete_topics(cfg)
                delete_topics(raw)
            log.info(
                f"run {r + 1}/{repeat}: {runs[-1]['produced_per_s']:,.0f} produced/s, "
                f"{runs[-1]['consumed_per_s']:,.0f} consumed/s; bare producer "
                f"{runs[-1]['bare_producer_per_s']:,.0f}/s"
            )
    med = {k: round(statistics.median(r[k] for r in runs)) for k in runs[0]}
    return {
        "dataset": ds.name,
        "events": len(schedule),
        "repeat": repeat,
        **med,
        "runs": [{k: round(v) for k, v in r.items()} for r in runs],
        "producer": "kafka-python 3.0, idempotent, acks=all, one core",
        "baseline": "bare_producer_per_s: the same encoded events, a bare producer, no controller",
        "broker": "embedded Tansu 0.6 (memory storage)" if embedded else settings.bootstrap_servers,
    }


def _bench_run(s: Settings, cfg: BusConfig, raw: BusConfig, schedule: Schedule) -> dict[str, float]:
    with _pinned_to_one_core():
        ctl = ReplayController(
            cfg, schedule, float("inf"), state_path=s.state_dir / "bench" / f"{cfg.namespace}.json"
        )
        t0 = time.perf_counter()
        state = ctl.run()
        produce_s = time.perf_counter() - t0
        reader = EventReader(cfg)
        t0 = time.perf_counter()
        n = reader.count({}, reader.end_offsets())
        consume_s = time.perf_counter() - t0
        reader.close()
        bare = _raw_rate(raw, schedule)
    if state.published != len(schedule) or n != len(schedule):
        raise ReplayrecError(f"benchmark: produced {state.published}, read {n}, expected {len(schedule)}")
    return {
        "produced_per_s": len(schedule) / produce_s,
        "consumed_per_s": n / consume_s,
        "bare_producer_per_s": bare,
    }
