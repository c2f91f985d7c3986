"""The live system, brought up by the project and taken down again: models trained before the temporal cut
``T`` (in their own registry), the Kafka-protocol broker, the Spark streaming job, the dataset's history up to
``T`` replayed onto the bus (so the online store holds every profile as of ``T``), and the service over HTTP.
``replayrec replay evaluate`` and ``replayrec demo`` stand on it; whatever it started, it stops.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from pydantic import SecretStr

from replayrec.application import (
    ReplayRequest,
    StreamRequest,
    TrainRequest,
    online_store,
    open_dataset,
    read_training_profile,
    run_replay,
    stream_reset,
    stream_start_detached,
    stream_stop,
    train_model,
    wait_for_stream,
)
from replayrec.bus import (
    BusConfig,
    RedisStateStore,
    broker_reachable,
    delete_topics,
    ensure_topics,
    start_broker,
)
from replayrec.cascade import read_cascade_layout
from replayrec.config import Settings
from replayrec.data import Dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import temporal_cutoff
from replayrec.registry import ModelRegistry
from replayrec.runtime import free_port, port_open, spawn, stop_process
from replayrec_serving._ops import service_env, wait_ready
from replayrec_serving._settings import ServiceSettings, default_serving_cascade

__all__ = [
    "PLUGINS",
    "LiveSystem",
    "SystemRequest",
    "ensure_models",
    "live_system",
    "serving_upstream",
    "sigterm_interrupts",
    "workspace",
]

log = logging.getLogger("replayrec.serving")

#: the serving cascade's models, in training order (each trains on the one before it at ``@prod``)
PLUGINS = ("lightgcn", "din", "ranknet")


def serving_upstream(cascade: Path) -> dict[str, dict[str, Any]]:
    """What DIN and RankNet are trained behind: the serving cascade's own recall (one stage, or its
    channels in their order: RankNet's channel features are named by position) and rank model, so every
    model is served in the cascade it was trained in."""
    layout = read_cascade_layout(cascade)
    channels = list(layout["recall"]["channels"])
    if len(channels) == 1:
        recall: dict[str, Any] = {k: v for k, v in channels[0].items() if k not in ("quota", "weight")}
    else:
        recall = {"merge": layout["recall"].get("merge", "quota"), "channels": channels}
    rank = {k: v for k, v in layout["rank"].items() if k != "k"}
    return {"din": {"recall": recall}, "ranknet": {"recall": recall, "rank": rank}}


@dataclass(frozen=True)
class SystemRequest:
    """What to bring up. ``train_config``: a training profile (``configs/demo.yaml``: the quick one);
    ``port`` None: a free one; ``admin_token`` None: a random one for this run."""

    dataset: str | None = None
    train_config: Path | None = None
    retrain: bool = False
    #: train this plugin and the ones after it again (e.g. ``din`` after a change to DIN's profile)
    retrain_from: str | None = None
    port: int | None = None
    workers: int = 2
    admin_token: str | None = None
    #: per-stage budget of the service: generous by default, so that a slow moment of a 2-core machine
    #: does not turn an answer into its fallback (the evaluation measures models, not the machine)
    budget_ms: float = 2000.0
    clear_store_at_exit: bool = False
    #: the models the cascade serves, in training order (a subset of PLUGINS: a drill's LightGCN alone)
    plugins: tuple[str, ...] = PLUGINS
    #: how the models are trained: ``temporal`` (the protocol's own split at the cut) or ``loo`` (on the
    #: dataset as it stood at the cut, each user's last events held out: a retraining's protocol too)
    protocol: str = "temporal"
    #: the share of the events after the temporal cut (the live window)
    holdout: float = 0.1
    #: the stream job's Prometheus port (None: not served; Prometheus scrapes it when given)
    stream_metrics_port: int | None = None


@dataclass
class LiveSystem:
    """A running system: where the service answers, its admin token, the cut, the models."""

    settings: ServiceSettings
    core: Settings
    dataset: Dataset
    cut: int
    url: str
    token: str
    models: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def bus(self) -> BusConfig:
        return BusConfig.from_settings(self.core)


def workspace(settings: Settings, dataset: str) -> Path:
    """The folder of the live system's own registry (models trained before the temporal cut)."""
    return settings.state_dir / "live" / dataset


def ensure_models(
    core: Settings,
    ds: Dataset,
    uri: str,
    train_config: Path | None,
    start: int,
    say: Callable[[str], None],
    cascade: Path | None = None,
    plugins: tuple[str, ...] = PLUGINS,
    protocol: str = "temporal",
) -> dict[str, str]:
    """LightGCN → DIN → RankNet (or the first ``plugins``) trained on the events before the temporal cut,
    each at ``@prod`` in the registry ``uri``, DIN and RankNet behind the serving ``cascade``'s recall. The
    ones before ``plugins[start]`` are reused when there (a missing one is trained with every one after it:
    each trains on its predecessors). Their versions."""
    if not plugins or tuple(plugins) != PLUGINS[: len(plugins)]:
        raise ConfigError(f"the live system's models are {', '.join(PLUGINS)} or a prefix of them")
    reg = ModelRegistry(uri)
    have = {p: reg.by_alias(p, "prod") for p in plugins}
    missing = [i for i, p in enumerate(plugins) if have[p] is None]
    start = min([start, *missing])
    out: dict[str, str] = {}
    for plugin in plugins[:start]:
        found = have[plugin]
        if found is not None:
            out[plugin] = f"v{found.version}"
    if out:
        say("models: reusing " + ", ".join(f"{p}@prod={v}" for p, v in out.items()))
    profile = read_training_profile(train_config)
    upstream = serving_upstream(cascade or default_serving_cascade())
    for plugin in plugins[start:]:
        config = {**profile.get(plugin, {}), **upstream.get(plugin, {})}  # the serving cascade's stages
        t0 = time.perf_counter()
        res = train_model(
            core,
            TrainRequest(plugin, ds.name, config, protocol=protocol, val_users=2000, tracking_uri=uri),
            ds,
        )
        reg.move_prod(plugin, res.model_version)
        out[plugin] = f"v{res.model_version}"
        took = time.perf_counter() - t0
        say(f"models: {plugin} v{res.model_version} trained on the events before the cut in {took:.0f} s")
    return out


def _core(settings: ServiceSettings) -> Settings:
    return Settings(**{k: getattr(settings, k) for k in Settings.model_fields})


def _fresh_bus(core: Settings, stack: contextlib.ExitStack, say: Callable[[str], None]) -> None:
    """A broker (ours when none answers) whose topics of this namespace start empty."""
    cfg = BusConfig.from_settings(core)
    if broker_reachable(cfg):
        delete_topics(cfg)
        time.sleep(0.5)
        ensure_topics(cfg)
        say(f"bus: the broker at {cfg.bootstrap_servers} answers; namespace {cfg.namespace} starts empty")
    else:
        stack.enter_context(start_broker(core))
        say(f"bus: started a broker at {cfg.bootstrap_servers}")


def _service(svc: ServiceSettings, stack: contextlib.ExitStack, timeout_s: float = 600.0) -> str:
    if port_open(svc.host, svc.port):
        raise ConfigError(f"{svc.host}:{svc.port} is already in use: stop what listens there or pick --port")
    folder = svc.serve_dir
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / f"service-{svc.port}.log"
    proc = spawn([sys.executable, "-m", "replayrec", "serve"], log_file, env=service_env(svc))
    stack.callback(stop_process, proc.pid, 20)
    url = f"http://{svc.host}:{svc.port}"
    wait_ready(url, timeout_s, proc, log_file)
    return url


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`KeyboardInterrupt` like Ctrl-C, so whatever was started is stopped on the way
    out (the children live in their own sessions: nothing else would stop them)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def live_system(
    settings: ServiceSettings, req: SystemRequest, say: Callable[[str], None] = log.info
) -> Iterator[LiveSystem]:
    """Bring the system up (see the module docstring); everything started here is stopped on exit."""
    core = _core(settings)
    ds = open_dataset(core, req.dataset)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cut = temporal_cutoff(ds.interactions(), req.holdout)  # the temporal protocol's cut: the models' own
    ws = workspace(core, ds.name)
    ws.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(ws / 'mlflow.db').resolve()}"
    if req.retrain_from is not None and req.retrain_from not in PLUGINS:
        raise ConfigError(f"--retrain-from {req.retrain_from!r}: one of {', '.join(PLUGINS)}")
    start = 0 if req.retrain else PLUGINS.index(req.retrain_from) if req.retrain_from else len(PLUGINS)
    if req.protocol not in ("temporal", "loo"):
        raise ConfigError(f"protocol {req.protocol!r}: temporal or loo")
    train_ds = ds if req.protocol == "temporal" else ds.as_of(cut)  # nothing after the cut, either way
    models = ensure_models(
        core, train_ds, uri, req.train_config, start, say, settings.cascade, req.plugins, req.protocol
    )
    timings["models_s"] = time.perf_counter() - t0
    with contextlib.ExitStack() as stack:
        t1 = time.perf_counter()
        _fresh_bus(core, stack, say)
        stream_stop(core)
        stream_reset(core, ds.name)
        if req.clear_store_at_exit:  # runs last: after the job and the service have stopped
            stack.callback(_clear_namespace, core)
        stack.callback(stream_stop, core)  # first: a start that fails half-way leaves no job behind
        stream_start_detached(core, StreamRequest(dataset=ds.name, metrics_port=req.stream_metrics_port))
        history = ReplayRequest(dataset=ds.name, until=str(cut), speed="max", metrics_port=None, resume=False)
        state = run_replay(core, history)
        wait_for_stream(core, online_store(core, ds), timeout_s=1800)
        timings["history_s"] = time.perf_counter() - t1
        took = timings["history_s"]
        say(f"stream: {state.published:,} events before the cut replayed and applied in {took:.0f} s")
        token = req.admin_token or secrets.token_urlsafe(24)
        budgets = {"recall": req.budget_ms, "rank": req.budget_ms, "rerank": req.budget_ms}
        svc = settings.model_copy(
            update={
                "dataset": ds.name, "tracking_uri": uri, "train_until": float(cut), "workers": req.workers,
                "port": req.port or free_port(settings.host), "admin_token": SecretStr(token),
                "budget_ms": budgets, "canary_fraction": 0.0, "item_stats_ttl_s": 0.0,
            }
        )  # fmt: skip
        t2 = time.perf_counter()
        url = _service(svc, stack)
        timings["service_s"] = time.perf_counter() - t2
        say(f"service: ready at {url} in {timings['service_s']:.0f} s")
        yield LiveSystem(svc, core, ds, cut, url, token, models, timings)


def _clear_namespace(core: Settings) -> None:
    r = redis.Redis.from_url(core.redis_url)
    try:
        for key in r.scan_iter(match=f"{core.bus_namespace}:*", count=2000):
            r.delete(key)
    finally:
        r.close()
    RedisStateStore(core.redis_url, core.bus_namespace).clear()
