"""The replay clock — the simulated "now" — and where it is published so every process agrees on it.

The controller owns a :class:`ReplayClock`; each time its state changes (and a few times a second while it
runs) it publishes a :class:`ReplayState` to Redis (key ``<namespace>:replay:state``) and to the replay
control topic. A reader turns a published state into the current simulated time with
:func:`clock_now`: ``clock + (wall_now - updated_at) * speed`` while it runs, ``clock`` otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Literal

import redis
from pydantic import BaseModel, ConfigDict

from replayrec.errors import ConfigError

__all__ = ["RedisStateStore", "ReplayClock", "ReplayState", "clock_now", "format_speed", "parse_speed"]

log = logging.getLogger("replayrec.bus")

Status = Literal[
    "starting", "running", "paused", "waiting", "broker-unavailable", "finished", "stopped", "failed"
]


def parse_speed(text: str | float) -> float:
    """``max`` (as fast as the broker takes events: ``inf``) or simulated seconds per wall second (> 0)."""
    if isinstance(text, str) and text.strip().lower() in ("max", "inf", "infinite"):
        return math.inf
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(
            f"speed {text!r}: a positive number (simulated seconds per second) or 'max'"
        ) from None
    if not speed > 0 or math.isnan(speed):
        raise ValueError(f"speed {text!r}: must be > 0 (or 'max')")
    return speed


def format_speed(speed: float) -> float | str:
    return "max" if math.isinf(speed) else speed


class ReplayClock:
    """Simulated time = ``sim0 + (wall - wall0) * speed`` while running; frozen while paused. At speed
    ``max`` the controller moves the clock itself (to the time of the last event it published)."""

    def __init__(self, start: float, speed: float, wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._sim0 = float(start)
        self._wall0 = wall()
        self.speed = speed
        self.paused = False

    def now(self) -> float:
        if self.paused or math.isinf(self.speed):
            return self._sim0
        return self._sim0 + (self._wall() - self._wall0) * self.speed

    def set(self, sim: float) -> None:
        self._sim0 = float(sim)
        self._wall0 = self._wall()

    def advance_to(self, sim: float) -> None:
        """Move forward only (the max-speed clock follows the events it published)."""
        if sim > self._sim0:
            self.set(sim)

    def pause(self) -> None:
        self.set(self.now())
        self.paused = True

    def resume(self) -> None:
        if not self.paused:
            return  # resuming a running clock must not rewind it
        self._wall0 = self._wall()
        self.paused = False

    def set_speed(self, speed: float) -> None:
        self.set(self.now())
        self.speed = speed


class ReplayState(BaseModel):
    """What the controller publishes: enough for any reader to know the simulated now and the progress."""

    model_config = ConfigDict(extra="ignore")

    dataset: str
    status: Status
    clock: float  # simulated Unix seconds at updated_at
    speed: float | Literal["max"]
    updated_at: float  # wall Unix seconds
    clock_running: bool = False  # the clock advances at ``speed`` (not paused, not ended)
    position: int = 0  # events of the range handled (published, skipped or already on the log)
    published: int = 0  # events this controller produced
    skipped: int = 0  # events jumped over by forward seeks
    already: int = 0  # events found on the log at start (not re-sent)
    total: int = 0
    range_from: float | None = None
    range_until: float | None = None
    next_event_time: float | None = None
    lag_s: float = 0.0
    outages: int = 0
    pid: int | None = None
    ack: list[str] = []
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"


def clock_now(state: ReplayState, wall: float | None = None) -> float:
    """The simulated time now according to ``state`` (extrapolated at its speed while it runs)."""
    if not state.clock_running or state.speed == "max":
        return state.clock
    return state.clock + ((time.time() if wall is None else wall) - state.updated_at) * float(state.speed)


class RedisStateStore:
    """The replay state in Redis; every failure is logged once and swallowed (Redis is where readers look
    first, not something the replay depends on)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.key = f"{namespace}:replay:state"
        try:
            self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        except ValueError as exc:
            raise ConfigError(f"REPLAYREC_REDIS_URL {url!r}: {exc}") from None
        self._warned = False

    def publish(self, state: ReplayState) -> bool:
        try:
            self._client.set(self.key, state.model_dump_json())
        except redis.RedisError as exc:
            if not self._warned:
                log.warning("replay clock not published to Redis (%s); readers fall back to the log", exc)
                self._warned = True
            return False
        self._warned = False
        return True

    def read(self) -> ReplayState | None:
        try:
            raw = self._client.get(self.key)
        except redis.RedisError:
            return None
        if raw is None:
            return None
        try:
            return ReplayState.model_validate(json.loads(raw))
        except (ValueError, TypeError):
            return None

    def clear(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self._client.delete(self.key)

    def close(self) -> None:
        self._client.close()
