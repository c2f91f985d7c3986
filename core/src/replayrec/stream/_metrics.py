"""Prometheus metrics of the stream job: batch duration, input rows, events/s, end-to-end freshness, consumer
lag, dead letters, rebuilds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from replayrec.stream._sink import BatchReport

__all__ = ["FRESHNESS_BUCKETS", "StreamMetrics"]

#: seconds from the producer's send to the event being visible in Redis
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class StreamMetrics:
    """The job's metrics in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.batch_seconds = Histogram(
            "replayrec_stream_batch_seconds", "wall time of one micro-batch in the sink",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0), registry=r,
        )  # fmt: skip
        self.rows = Counter("replayrec_stream_input_rows", "records read from the events topic", registry=r)
        self.applied = Counter(
            "replayrec_stream_events_applied", "events applied to the online store", registry=r
        )
        self.rate = Gauge(
            "replayrec_stream_events_per_second", "events applied per second (last batch)", registry=r
        )
        self.freshness = Histogram(
            "replayrec_stream_freshness_seconds", "event produced → visible in Redis",
            buckets=FRESHNESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "replayrec_stream_lag_events", "records on the topic the store has not applied", registry=r
        )
        self.dead_letters = Counter(
            "replayrec_stream_dead_letters",
            "events the job refused (sent to the dead-letter topic)",
            ["reason"],
            registry=r,
        )
        self.rebuilds = Counter(
            "replayrec_stream_rebuilds", "times the online store was rebuilt from the log", registry=r
        )
        self.batch_id = Gauge("replayrec_stream_batch", "id of the last micro-batch", registry=r)

    def observe(self, rep: BatchReport) -> None:
        self.batch_seconds.observe(rep.seconds)
        self.rows.inc(rep.rows)
        self.applied.inc(rep.applied)
        self.batch_id.set(rep.batch)
        if rep.seconds > 0:
            self.rate.set(rep.applied / rep.seconds)
        for reason, n in rep.dead_reasons.items():
            self.dead_letters.labels(reason).inc(n)
        for v in rep.freshness_ms:
            self.freshness.observe(v / 1000.0)
