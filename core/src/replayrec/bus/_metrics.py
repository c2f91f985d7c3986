"""Prometheus metrics of the bus: produced events, dead letters, broker outages, the replay clock."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["BusMetrics"]


class BusMetrics:
    """The bus's metrics in one registry (a fresh one per controller or service; never the global default,
    so two in one process do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.produced = Counter(
            "replayrec_bus_events_produced", "events written to the events topic", ["source"], registry=r
        )
        self.dead_letters = Counter(
            "replayrec_bus_dead_letters",
            "events refused and written to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.outages = Counter(
            "replayrec_bus_broker_outages", "times the broker stopped answering a producer", registry=r
        )
        self.rate = Gauge(
            "replayrec_bus_produced_per_second", "events produced per second (last 5 s)", registry=r
        )
        self.rate.set_function(self.produced_per_second)
        self.clock = Gauge(
            "replayrec_replay_clock_seconds", "the replay clock (simulated Unix time)", registry=r
        )
        self.lag = Gauge(
            "replayrec_replay_lag_seconds", "wall seconds the replay is behind its schedule", registry=r
        )
        self.speed = Gauge("replayrec_replay_speed", "simulated seconds per wall second (0: max)", registry=r)
        self.position = Gauge("replayrec_replay_position", "events of the replay handled so far", registry=r)
        self.total = Gauge("replayrec_replay_events", "events in the replay's range", registry=r)
        self.paused = Gauge("replayrec_replay_paused", "1 while paused", registry=r)
        self._window: deque[tuple[float, int]] = deque()
        self._count = 0

    def record_produced(self, n: int, source: str) -> None:
        self.produced.labels(source).inc(n)
        self._count += n
        self._window.append((time.monotonic(), self._count))
        self._trim(time.monotonic())

    def _trim(self, now: float) -> None:
        while self._window and now - self._window[0][0] > 5.0:
            self._window.popleft()

    def produced_per_second(self) -> float:
        """Events produced over the last 5 s, per second (computed when scraped: 0 when nothing moves)."""
        now = time.monotonic()
        self._trim(now)
        if not self._window:
            return 0.0
        first_t, first_c = self._window[0]
        return (self._count - first_c) / max(now - first_t, 1.0) if len(self._window) > 1 else 0.0
