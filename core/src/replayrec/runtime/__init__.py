"""Processes the project starts and stops itself (the broker, the replay controller, later the streaming job
and the service): detached start with a pid file, a stop that ends the whole process group, port checks."""

from replayrec.runtime._process import (
    PidLock,
    free_port,
    free_ports,
    pid_alive,
    port_open,
    read_pid,
    serve_metrics,
    spawn,
    stop_process,
    wait_for_port,
    wait_started,
    write_json_atomic,
)

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
