"""What the service measures: Prometheus metrics (per worker, or merged across workers in multiprocess mode)
and per-arm live numbers kept in Redis — requests, errors, latency buckets, online hits, impressions and
clicks — so the canary gate and ``GET /v1/arms`` see every worker of every replica."""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterable
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from replayrec.promotion import arm_window

__all__ = ["LATENCY_BUCKETS_MS", "ArmStats", "ServiceMetrics", "render_metrics"]

log = logging.getLogger("replayrec.serving")

LATENCY_BUCKETS_MS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000, 5000)
_SECONDS = tuple(b / 1000 for b in LATENCY_BUCKETS_MS)


class ServiceMetrics:
    """The service's Prometheus metrics (``replayrec_serve_*``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "replayrec_serve_request_seconds", "request latency by endpoint, arm and status",
            ["endpoint", "arm", "status"], buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self.stage = Histogram(
            "replayrec_serve_stage_seconds", "cascade stage latency by stage, arm and outcome",
            ["stage", "arm", "outcome"], buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self.cache = Counter("replayrec_serve_cache_total", "result cache lookups", ["result"], registry=r)
        self.degraded = Counter(
            "replayrec_serve_degraded_total", "answers served degraded, by reason", ["reason"], registry=r
        )
        self.errors = Counter(
            "replayrec_serve_errors_total", "failures handled without a 5xx, by where", ["where"], registry=r
        )
        self.model = Gauge(
            "replayrec_serve_model_info", "model versions each arm serves (1 = serving)",
            ["arm", "plugin", "version"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.swaps = Counter(
            "replayrec_serve_model_swaps_total", "model loads by outcome", ["outcome"], registry=r
        )
        self.events = Counter(
            "replayrec_serve_events_total", "events posted, by outcome", ["outcome"], registry=r
        )
        self.feedback = Counter(
            "replayrec_serve_feedback_total", "impressions and clicks reported, by arm", ["arm", "kind"],
            registry=r,
        )  # fmt: skip
        self.hits = Counter(
            "replayrec_serve_online_hits_total", "next events that were in the list served, by arm",
            ["arm", "hit"], registry=r,
        )  # fmt: skip
        self._served: set[tuple[str, str, str]] = set()
        self.shadow_overlap = Histogram(
            "replayrec_serve_shadow_overlap", "overlap@k of the shadow arm's list with the shown one",
            ["arm"], buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=r,
        )  # fmt: skip

    def set_models(self, arms: Iterable[Any]) -> None:
        """1 for every (arm, plugin, version) served now, 0 for those served before (``clear`` does not
        exist in multiprocess mode)."""
        now = {(arm.name, p, v) for arm in arms for p, v in arm.versions.items()}
        for labels in self._served - now:
            self.model.labels(*labels).set(0)
        for labels in now:
            self.model.labels(*labels).set(1)
        self._served = now


def render_metrics(metrics: ServiceMetrics) -> bytes:
    """The exposition: merged over every worker when ``PROMETHEUS_MULTIPROC_DIR`` is set, else this one's."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(merged))
    return bytes(generate_latest(metrics.registry))


class ArmStats:
    """Per-arm counters in Redis hashes ``<ns>:serve:arm:<arm>`` (the arm's model key inside, so a new
    canary version starts from zero). Writes are best effort: a Redis outage never fails a request."""

    FIELDS = ("requests", "errors", "degraded", "events", "hits", "impressions", "clicks")

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.r: Any = client
        self.prefix = f"{namespace}:serve:arm:"

    def _key(self, arm: str) -> str:
        return self.prefix + arm

    def record(self, arm: str, model_key: str, ms: float, *, error: bool, degraded: bool) -> None:
        b = bisect.bisect_left(LATENCY_BUCKETS_MS, ms)
        le = str(LATENCY_BUCKETS_MS[b]) if b < len(LATENCY_BUCKETS_MS) else "inf"
        try:
            pipe = self.r.pipeline(transaction=False)
            key = self._key(arm)
            pipe.hsetnx(key, "model", model_key)
            pipe.hincrby(key, "requests", 1)
            pipe.hincrby(key, f"lat:{le}", 1)
            if error:
                pipe.hincrby(key, "errors", 1)
            if degraded:
                pipe.hincrby(key, "degraded", 1)
            pipe.execute()
        except redis.RedisError:
            pass

    def add(self, arm: str, **counts: int) -> None:
        try:
            pipe = self.r.pipeline(transaction=False)
            for name, n in counts.items():
                if n:
                    pipe.hincrby(self._key(arm), name, int(n))
            pipe.execute()
        except redis.RedisError:
            pass

    def reset(self, arm: str, model_key: str) -> None:
        """Start ``arm``'s numbers afresh when it serves a new model key."""
        try:
            key = self._key(arm)
            if self.r.hget(key, "model") not in (None, model_key.encode()):
                pipe = self.r.pipeline(transaction=True)
                pipe.delete(key)
                pipe.hset(key, "model", model_key)
                pipe.execute()
        except redis.RedisError:
            pass

    def read(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(self.r.scan_iter(match=self.prefix + "*", count=500)):
            raw = {k.decode(): v.decode() for k, v in self.r.hgetall(key).items()}
            out[key.decode()[len(self.prefix) :]] = summarise(raw)
        return out

    def clear(self) -> None:
        keys = list(self.r.scan_iter(match=self.prefix + "*", count=500))
        if keys:
            self.r.delete(*keys)


def summarise(raw: dict[str, str]) -> dict[str, Any]:
    """An arm's Redis hash as ``/v1/arms`` shows it: read by the canary gate's own function, so the service
    and the gate compute error rate, HR, CTR and the latency quantiles one way."""
    arm: dict[str, Any] = {f: int(raw.get(f, 0)) for f in ArmStats.FIELDS}
    arm["model"] = raw.get("model")
    arm["latency_buckets_ms"] = {k[4:]: int(v) for k, v in raw.items() if k.startswith("lat:")}
    return arm_window(None, arm)
