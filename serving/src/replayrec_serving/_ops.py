"""The serving operations the CLI calls: run the service, start / stop it in the background, the A/B
experiment in Redis."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from replayrec.application import settings_env
from replayrec.cascade import read_cascade_layout
from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.runtime import port_open, spawn, stop_process
from replayrec_serving._experiment import Experiment, ExperimentArm, ExperimentStore
from replayrec_serving._settings import ServiceSettings

__all__ = [
    "clear_experiment",
    "parse_arm",
    "running_service",
    "serve",
    "service_env",
    "set_experiment",
    "show_experiment",
    "wait_ready",
]


def service_env(settings: ServiceSettings) -> dict[str, str]:
    """The settings as ``REPLAYREC_*`` variables (for worker processes and services we start)."""
    env = settings_env(settings)
    dumped = settings.model_dump(mode="json")
    for key in ServiceSettings.model_fields:
        if key in Settings.model_fields or getattr(settings, key) is None:
            continue
        value = dumped[key]
        if key == "admin_token" and settings.admin_token is not None:
            value = settings.admin_token.get_secret_value()
        env[f"REPLAYREC_{key.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


def serve(settings: ServiceSettings) -> None:
    """Run the service in the foreground until Ctrl-C / SIGTERM; ``workers`` > 1 runs that many processes
    (each on its own ``SO_REUSEPORT`` socket), their Prometheus metrics merged (multiprocess mode)."""
    from replayrec_serving._app import create_app
    from replayrec_serving._http import run_one, run_workers

    if settings.workers == 1:
        run_one(create_app(settings), settings.host, settings.port)
        return
    folder = settings.serve_dir / f"prometheus-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**service_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        code = run_workers(settings.workers, settings.host, settings.port, env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if code:
        raise ReplayrecError(f"a service worker exited with code {code}")


def wait_ready(url: str, timeout_s: float, proc: Any = None, log: Path | None = None) -> dict[str, Any]:
    """Poll ``/readyz`` until it answers 200 (or raise, with the log's tail when the process died)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-2000:] if log is not None and log.is_file() else ""
            raise ReplayrecError(f"the service exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")[:300]
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    raise ReplayrecError(f"the service at {url} was not ready within {timeout_s:.0f} s (last answer: {last})")


@contextlib.contextmanager
def running_service(settings: ServiceSettings, timeout_s: float = 300.0) -> Iterator[tuple[str, bool]]:
    """The service at ``settings.host:port`` when one answers; otherwise one started here (its own process
    group, stopped after). Yields ``(url, started_here)``."""
    url = f"http://{settings.host}:{settings.port}"
    if port_open(settings.host, settings.port):
        wait_ready(url, timeout_s)
        yield url, False
        return
    folder = settings.serve_dir
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"service-{settings.port}.log"
    argv = [sys.executable, "-m", "replayrec", "serve"]
    proc = spawn(argv, log, env=service_env(settings))
    try:
        wait_ready(url, timeout_s, proc, log)
        yield url, True
    finally:
        stop_process(proc.pid, timeout_s=20)


# -- the A/B experiment ------------------------------------------------------------------------------------
def _store(settings: ServiceSettings) -> ExperimentStore:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    return ExperimentStore(client, settings.bus_namespace)


def parse_arm(text: str) -> ExperimentArm:
    """``NAME=CASCADE.yaml[:WEIGHT]`` → an arm (the YAML read and validated now)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--arm {text!r}: expected NAME=CASCADE.yaml[:WEIGHT]")
    path, weight = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon and head:
        try:
            weight = float(tail)
            path = head
        except ValueError:
            pass
    layout = read_cascade_layout(Path(path))
    return ExperimentArm.model_validate({"name": name, "weight": weight, "cascade": layout})


def set_experiment(
    settings: ServiceSettings, name: str, arms: list[str], salt: str | None, shadow: str | None
) -> Experiment:
    exp = Experiment.parse(
        {
            "name": name,
            "salt": salt or f"replayrec-ab-{name}",
            "arms": [parse_arm(a).model_dump() for a in arms],
            "shadow": parse_arm(shadow).model_dump() if shadow else None,
        },
        source="experiment",
    )
    try:
        return _store(settings).set(exp)
    except redis.RedisError as exc:
        raise ReplayrecError(f"Redis at {settings.redis_url} does not answer ({exc})") from None


def show_experiment(settings: ServiceSettings) -> Experiment | None:
    try:
        return _store(settings).get()
    except redis.RedisError as exc:
        raise ReplayrecError(f"Redis at {settings.redis_url} does not answer ({exc})") from None


def clear_experiment(settings: ServiceSettings) -> bool:
    try:
        return _store(settings).clear()
    except redis.RedisError as exc:
        raise ReplayrecError(f"Redis at {settings.redis_url} does not answer ({exc})") from None
