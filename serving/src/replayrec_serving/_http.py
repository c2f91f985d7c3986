"""How the service runs on uvicorn: one process, or N worker processes that each accept on their own
``SO_REUSEPORT`` socket; every connection with ``TCP_NODELAY``.

Both measured here. With uvicorn's own ``--workers``, connections kept Nagle's algorithm on, so every
answer after the first on a kept-alive connection waited ≈ 40 ms for the client's delayed ACK (a hello-world
endpoint: 0.4 ms with one worker, 44 ms with two); and all 16 kept-alive connections of a load test landed
on one worker (one shared listening socket: the first worker to wake accepts them all), so two workers served
what one does. With a socket per worker the kernel spreads new connections over the workers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import multiprocess
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["NoDelayH11Protocol", "run_one", "run_workers"]


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _config(app: Any, **kw: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, http=NoDelayH11Protocol, **kw)


def run_one(app: Any, host: str, port: int) -> None:
    """One process until Ctrl-C / SIGTERM."""
    uvicorn.Server(_config(app, host=host, port=port)).run()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops workers with SIGTERM
    sock = _listen(host, port)
    server = uvicorn.Server(_config("replayrec_serving:app_from_env", factory=True))
    server.run(sockets=[sock])


def run_workers(n: int, host: str, port: int, env: dict[str, str]) -> int:
    """``n`` worker processes on ``host:port`` until Ctrl-C / SIGTERM (sent on to every worker) or until a
    worker exits (the others are stopped then). Returns the first non-zero exit code, else 0."""
    _listen(host, port).close()  # a taken port fails here, once, with the OS's message
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(host, port, env), name=f"serve-{i}") for i in range(n)]
    for p in procs:
        p.start()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        wait([p.sentinel for p in procs])  # the first worker to end (or the signal) ends them all
        if not stopping:
            stop(signal.SIGTERM, None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            for p in procs:
                if p.pid is not None:
                    multiprocess.mark_process_dead(p.pid)  # type: ignore[no-untyped-call]
    return next((p.exitcode for p in procs if p.exitcode not in (0, None, -signal.SIGTERM)), 0) or 0
