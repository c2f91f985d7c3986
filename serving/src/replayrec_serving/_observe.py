"""Monitoring beside a running live system (``replayrec demo``): the monitor (drift, per-arm health, the
registry exporter) checking in a background thread behind its HTTP endpoint, and Prometheus scraping the
service, the stream job, the replay controller and the monitor with the project's recording and alert rules.
Everything started here is stopped on exit; without the Prometheus binaries the monitor runs alone."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from replayrec.errors import ReplayrecError
from replayrec.monitoring import (
    ModelMonitor,
    MonitorService,
    RetrainConfig,
    RetrainTrigger,
    load_monitor_config,
    prometheus_config,
    prometheus_tools,
    start_prometheus,
)
from replayrec.runtime import free_port
from replayrec_serving._system import LiveSystem

__all__ = ["Observability", "observability"]

log = logging.getLogger("replayrec.serving")


@dataclass(frozen=True)
class Observability:
    monitor_url: str
    prometheus_url: str | None


@contextlib.contextmanager
def observability(
    system: LiveSystem,
    *,
    stream_port: int | None,
    replay_port: int | None,
    say: Callable[[str], None],
    config: Path | None = None,
    retrain: RetrainConfig | None = None,
) -> Iterator[Observability]:
    """Start the monitor (retraining off unless ``retrain``) and Prometheus for ``system``."""
    cfg = load_monitor_config(config, check_every_s=15.0)
    cfg = cfg.model_copy(update={"retrain": retrain or cfg.retrain.model_copy(update={"enabled": False})})
    uri = system.settings.tracking_uri or ""
    monitor = ModelMonitor(system.core, system.dataset, uri, cfg, system.url)
    trigger = RetrainTrigger(system.core, cfg.retrain, system.dataset.name, uri, monitor.metrics)
    service = MonitorService(monitor, trigger, token=system.token)
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        stack.callback(monitor.close)
        server = stack.enter_context(service.serve(port=free_port()))
        thread = threading.Thread(target=service.run, args=(stop,), name="monitor", daemon=True)
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(stop.set)
        monitor_at = f"127.0.0.1:{server.server_port}"
        targets = {"service": [system.url.split("//", 1)[1]], "monitor": [monitor_at]}
        if stream_port is not None:
            targets["stream"] = [f"127.0.0.1:{stream_port}"]
        if replay_port is not None:
            targets["replay"] = [f"127.0.0.1:{replay_port}"]
        prometheus_url = None
        try:
            prometheus_tools(alertmanager=False)
        except ReplayrecError as exc:
            say(f"monitoring: no Prometheus ({exc}); the monitor runs alone")
        else:
            folder = system.core.state_dir / "prometheus" / system.core.bus_namespace
            prom = stack.enter_context(start_prometheus(prometheus_config(targets), folder))
            prometheus_url = prom.url
            say(f"monitoring: Prometheus at {prom.url} scraping {', '.join(sorted(targets))}; alerts at "
                f"{prom.url}/alerts")  # fmt: skip
        say(f"monitoring: the monitor at http://{monitor_at}/v1/report (drift, arms, registry)")
        yield Observability(f"http://{monitor_at}", prometheus_url)
