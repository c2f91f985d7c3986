"""Talking to a running replay controller: commands over the control topic (acknowledged in the next
published state), the current state from Redis, the control topic or the state file — whichever answers."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafka import TopicPartition
from kafka.errors import KafkaError

from replayrec.bus._clock import RedisStateStore, ReplayState
from replayrec.bus._kafka import (
    BusConfig,
    BusUnavailableError,
    abandon_producer,
    high_watermarks,
    make_producer,
    make_reader,
    read_range,
)
from replayrec.bus._replay import COMMANDS, new_command
from replayrec.errors import ReplayrecError

__all__ = ["ReplayNotRunningError", "read_state", "send_command"]


class ReplayNotRunningError(ReplayrecError):
    """No replay controller answered."""


def send_command(cfg: BusConfig, command: str, value: object = None, timeout_s: float = 10.0) -> ReplayState:
    """Send ``command`` and wait for the controller's state that acknowledges it."""
    if command not in COMMANDS:
        raise ReplayrecError(f"unknown replay command {command!r}; one of {', '.join(COMMANDS)}")
    consumer = make_reader(cfg)
    producer = make_producer(cfg, enable_idempotence=False, acks=1, linger_ms=0)
    try:
        start = high_watermarks(consumer, cfg.control_topic, timeout_s).get(0, 0)
        cmd = new_command(command, value)
        producer.send(cfg.control_topic, value=json.dumps(cmd).encode(), partition=0)
        producer.flush(timeout=timeout_s)
        tp = TopicPartition(cfg.control_topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=100, max_records=500).values():
                for r in records:
                    state = _state_of(r.value)
                    if state is not None and cmd["id"] in state.ack:
                        if state.error:
                            raise ReplayrecError(f"replay controller refused {command}: {state.error}")
                        return state
        raise ReplayNotRunningError(
            f"no replay controller acknowledged {command!r} within {timeout_s:.0f} s: it is either not "
            "running or busy (a slow broker); a busy one applies it later (replayrec replay status)"
        )
    except KafkaError as exc:
        raise BusUnavailableError(f"broker at {cfg.bootstrap_servers}: {exc}") from None
    finally:
        abandon_producer(producer)
        consumer.close()


def _state_of(value: bytes | None) -> ReplayState | None:
    try:
        msg = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("type") != "state":
        return None
    try:
        return ReplayState.model_validate(msg)
    except ValueError:
        return None


def _last_logged_state(cfg: BusConfig, timeout_s: float) -> ReplayState | None:
    consumer = make_reader(cfg)
    try:
        end = high_watermarks(consumer, cfg.control_topic, timeout_s).get(0, 0)
        lo = max(0, end - 200)
        last = None
        for batch in read_range(consumer, cfg.control_topic, {0: lo}, {0: end}, timeout_s):
            for m in batch:
                last = _state_of(m.value) or last
        return last
    finally:
        consumer.close()


def read_state(
    cfg: BusConfig, store: RedisStateStore | None, state_path: Path, timeout_s: float = 3.0
) -> tuple[ReplayState | None, str]:
    """The latest replay state and where it came from (``redis``, ``log`` or ``file``)."""
    if store is not None:
        st = store.read()
        if st is not None:
            return st, "redis"
    try:
        st = _last_logged_state(cfg, timeout_s)
        if st is not None:
            return st, "log"
    except (BusUnavailableError, KafkaError):
        pass
    try:
        return ReplayState.model_validate(json.loads(state_path.read_text())), "file"
    except (OSError, ValueError):
        return None, "none"
