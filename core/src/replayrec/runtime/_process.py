"""Process supervision primitives: pid files, process groups, ports, atomic JSON files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from replayrec.errors import ReplayrecError

log = logging.getLogger("replayrec")

__all__ = [
    "PidLock",
    "free_port",
    "free_ports",
    "pid_alive",
    "port_open",
    "read_pid",
    "serve_metrics",
    "spawn",
    "stop_process",
    "wait_for_port",
    "wait_started",
    "write_json_atomic",
]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


class PidLock:
    """An exclusive ``flock`` on a pid file holding this process's pid: one owner at a time (a second one
    fails at once), released when the process ends however it ends."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> PidLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            other = self.path.read_text().strip() or "?"
            raise ReplayrecError(f"{self.what} is already running (pid {other})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def read_pid(pid_file: Path, expect: str | None = None) -> int | None:
    """The pid recorded in ``pid_file`` when that process is alive (and its command line contains
    ``expect``, so a recycled pid is not mistaken for ours); ``None`` otherwise (a stale file is removed)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid_alive(pid) and (expect is None or expect in _cmdline(pid)):
        return pid
    with contextlib.suppress(OSError):
        pid_file.unlink()
    return None


def spawn(
    argv: Sequence[str], log: Path, pid_file: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (process group, so it survives this process and its whole group
    can be stopped), output appended to ``log``; the pid goes to ``pid_file``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            close_fds=True,
        )
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{proc.pid}\n")
    return proc


def stop_process(pid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM to the process group of ``pid``, then SIGKILL after ``timeout_s``. True when it is gone."""
    if not pid_alive(pid):
        return True
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return True
    target_group = pgid == pid  # started by spawn(): the leader of its own group
    with contextlib.suppress(ProcessLookupError):
        if target_group:
            os.killpg(pgid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    if target_group:
        # whatever else is left in the group (e.g. a JVM the driver started)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    elif pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS's choice)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free TCP ports (all held open while choosing, so none is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout_s: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Block until ``host:port`` accepts connections; :class:`ReplayrecError` (with the log's tail) if the
    process exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            break
        time.sleep(0.02)
    tail = ""
    if log is not None and log.is_file():
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    raise ReplayrecError(
        f"nothing listens on {host}:{port} after {timeout_s:.0f} s{': ' + tail if tail else ''}"
    )


def wait_started(
    proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool], what: str, timeout_s: float
) -> int:
    """Wait until ``ready()`` for a process :func:`spawn` started; its pid. When it exits first, or is not
    ready within ``timeout_s`` (then it is stopped), :class:`ReplayrecError` with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
            raise ReplayrecError(f"{what} exited ({proc.returncode}): {' | '.join(tail)}")
        if ready():
            return proc.pid
        time.sleep(0.05)
    stop_process(proc.pid)
    raise ReplayrecError(f"{what} did not start within {timeout_s:.0f} s (see {log})")


def serve_metrics(registry: CollectorRegistry, port: int | None, what: str, host: str = "127.0.0.1") -> Any:
    """Prometheus ``/metrics`` of ``registry`` on ``host``:``port`` (``None``: not served; loopback unless a
    pod's scraper must reach it); the server, or ``None`` with a warning when the port is taken (metrics never
    stop the process serving them)."""
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("%s metrics not served: %s:%d (%s)", what, host, port, exc.strerror)
        return None
    log.info("%s metrics on http://%s:%d/metrics", what, host, port)
    return server
