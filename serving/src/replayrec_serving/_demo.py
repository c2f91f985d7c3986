"""``replayrec demo``: the live system on the prepared dataset — models trained before the temporal cut (or
reused), broker, streaming job, the service with its web UI, a short replay evaluation, then the events after
the evaluated days replayed at a watchable speed — until Ctrl-C or ``seconds``; everything stopped after."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayrec.application import ReplayRequest, replay_start_detached, replay_stop
from replayrec.runtime import free_ports, write_json_atomic
from replayrec_serving._observe import observability
from replayrec_serving._replay_eval import DAY_S, ReplayEvalRequest, evaluate_replay, format_replay_eval
from replayrec_serving._settings import ServiceSettings
from replayrec_serving._system import SystemRequest, live_system, sigterm_interrupts, workspace

__all__ = ["DemoRequest", "run_demo"]

log = logging.getLogger("replayrec.serving")


@dataclass(frozen=True)
class DemoRequest:
    dataset: str | None = None
    train_config: Path | None = None
    seconds: float | None = None  # None: until Ctrl-C
    eval_users: int = 100
    eval_days: float = 7.0
    speed: str = "3600"
    retrain: bool = False
    retrain_from: str | None = None
    workers: int = 2
    admin_token: str | None = None
    #: the monitor and Prometheus beside the system (off: neither runs)
    monitoring: bool = True


def run_demo(settings: ServiceSettings, req: DemoRequest, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the demo (see the module docstring); the replay evaluation's result. Ctrl-C (or SIGTERM) at any
    moment stops what was started; while the replay runs, it is the normal end."""
    with sigterm_interrupts():
        return _run(settings, req, say)


def _run(settings: ServiceSettings, req: DemoRequest, say: Callable[[str], None]) -> dict[str, Any]:
    stream_port, replay_port = free_ports(2) if req.monitoring else (None, None)
    system_req = SystemRequest(
        dataset=req.dataset, train_config=req.train_config, retrain=req.retrain,
        retrain_from=req.retrain_from, port=settings.port,
        workers=req.workers, admin_token=req.admin_token, stream_metrics_port=stream_port,
    )  # fmt: skip
    with live_system(settings, system_req, say) as system, contextlib.ExitStack() as stack:
        if req.monitoring:
            stack.enter_context(
                observability(system, stream_port=stream_port, replay_port=replay_port, say=say)
            )
        result = evaluate_replay(system, ReplayEvalRequest(users=req.eval_users, days=req.eval_days), say)
        path = workspace(system.core, system.dataset.name) / "replay-eval.json"
        write_json_atomic(path, result)
        say(format_replay_eval(result))
        say(f"(the whole result: {path})")
        start = system.cut + req.eval_days * DAY_S
        replay = ReplayRequest(
            dataset=system.dataset.name, start=str(start), speed=req.speed, metrics_port=replay_port
        )
        replay_start_detached(system.core, replay)
        try:
            say(f"replaying the events after {start:.0f} at {req.speed}× (the time slider moves it)")
            say(f"\n  the live UI: {system.url}/ui#token={system.token}\n")
            say("Ctrl-C stops everything" if req.seconds is None else f"running for {req.seconds:.0f} s")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait(req.seconds)
        finally:
            replay_stop(system.core)
    say("demo stopped: the service, the replay, the stream job, the broker, the monitor and Prometheus")
    return result


def dump(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
