"""The live web UI's service side (the page under ``/ui``; ``/v1/users``, ``/v1/system``, the live stream):
what the page shows, read from the worker's :class:`RecommendationService` — a user's online profile with
titles and the interest over item groups, the store's freshness, the replay clock, traffic per arm over a
short window — and the server-sent events that tell the page when a user's profile or the replay clock moved.

Nothing here computes at import; :class:`UiState` (one per app, created on the first UI request) computes the
group labels and the dataset's timeline once, keeps the traffic window and counts the open live streams.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import redis
from prometheus_client import Counter, Gauge

from replayrec.application import stream_dir
from replayrec.bus import ReplayState, clock_now
from replayrec.features import StoreMeta, StoreNotReadyError, UserProfile
from replayrec.promotion import arm_window, bucket_quantile
from replayrec_serving._service import RecommendationService

__all__ = [
    "LIVE_POLL_S",
    "LiveSnapshot",
    "UiState",
    "find_users",
    "live_events",
    "live_snapshot",
    "system_view",
    "user_view",
]

LIVE_POLL_S = 0.25  # how often a live stream reads the profile version and the replay clock
HEARTBEAT_S = 10.0  # a comment line this often while nothing changes (proxies, and a gone client shows)
CLOCK_STEP_MS = 3_600_000  # a running replay clock is pushed once per simulated hour (seeks at once)
WINDOW_S = 15.0  # QPS and p99 over about this many seconds
SCAN_CALLS = 50  # a user search stops after this many SCAN calls (of SCAN_COUNT keys each)
SCAN_COUNT = 2000


class UiState:
    """What the UI keeps per worker: the group labels and the timeline (computed once), the traffic window,
    a small thread limiter for its Redis reads (live streams never queue behind the cascades), its metrics."""

    def __init__(self, service: RecommendationService) -> None:
        self.service = service
        self.limiter = anyio.CapacityLimiter(4)
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, dict[str, Any]], int | None]] = deque(maxlen=2000)
        self._labels: list[str] | None = None
        self._timeline: dict[str, int] | None = None
        registry = service.metrics.registry
        self.open_streams = Gauge(
            "replayrec_serve_ui_streams", "live streams (server-sent events) of the UI open now",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.closed_streams = Counter(
            "replayrec_serve_ui_streams_closed", "live streams ended, by why (lifetime | disconnect)",
            ["reason"], registry=registry,
        )  # fmt: skip

    def labels(self) -> list[str]:
        """Per item group: the title of its most consumed item (the groups are clusters without names)."""
        with self._lock:
            if self._labels is None:
                self._labels = group_labels(self.service)
            return self._labels

    def timeline(self) -> dict[str, int]:
        """The dataset's event times: first and last (ms) and how many events (the time slider's range)."""
        with self._lock:
            if self._timeline is None:
                ts = self.service.dataset.events["timestamp"].to_numpy(np.int64)
                lo, hi = (int(ts.min()), int(ts.max())) if ts.size else (0, 0)
                self._timeline = {"start_ms": lo * 1000, "end_ms": hi * 1000, "events": int(ts.size)}
            return self._timeline

    def window(
        self, now: float, arms: dict[str, dict[str, Any]], applied: int | None
    ) -> tuple[float, dict[str, dict[str, Any]], int | None] | None:
        """The sample about ``WINDOW_S`` before ``now`` (None while there is none a second old); ``now``'s
        numbers are kept for later calls. Every worker keeps its own samples of the shared numbers."""
        with self._lock:
            s = self._samples
            s.append((now, arms, applied))
            while len(s) > 2 and now - s[1][0] >= WINDOW_S:
                s.popleft()
            base = s[0]
        return base if now - base[0] >= 1.0 else None


def group_labels(service: RecommendationService) -> list[str]:
    catalog = service.catalog
    n = service.store.n_groups
    counts = np.bincount(service.dataset.events["item"].to_numpy(np.int64), minlength=catalog.n_items)
    order = np.lexsort((np.arange(counts.size), -counts))  # most consumed first, ties by id
    groups = np.asarray(catalog.groups, dtype=np.int64)[order]
    labels = [f"group {g}" for g in range(n)]
    found, first = np.unique(groups, return_index=True)
    for g, at in zip(found.tolist(), first.tolist(), strict=True):
        if 0 <= g < n:
            labels[g] = catalog.title(int(order[at]))
    return labels


# -- users ------------------------------------------------------------------------------------------
def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def find_users(service: RecommendationService, prefix: str, limit: int) -> dict[str, Any]:
    """Users of the online store whose id starts with ``prefix``: at most ``limit``, sorted, each with its
    profile version (events applied). A bounded scan: ``complete`` is false when it stopped early."""
    r: Any = service.redis
    head = f"{service.store.prefix}u:"
    match = head + _glob_escape(prefix) + "*"
    cursor, calls = 0, 0
    found: set[str] = set()
    while True:
        cursor, keys = r.scan(cursor, match=match, count=SCAN_COUNT)
        found.update(k.decode()[len(head) :] for k in keys)
        calls += 1
        if cursor == 0 or len(found) >= limit or calls >= SCAN_CALLS:
            break
    users = sorted(found)[:limit]
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.hget(head + u, "v")
    versions = pipe.execute() if users else []
    return {
        "prefix": prefix,
        "users": [{"user": u, "events": int(v or 0)} for u, v in zip(users, versions, strict=True)],
        "complete": cursor == 0 and len(found) <= limit,
    }


def user_view(service: RecommendationService, ui: UiState, user: str, n_events: int) -> dict[str, Any]:
    """The user's profile as of the replay clock, for the page: the newest ``n_events`` events (newest
    first) with titles, the interest over every item group with its label. An unknown user, or a store that
    cannot be read (``store`` says why), gives an empty profile."""
    at = service.now_ms()
    store, prof = "ready", None
    try:
        prof = service.store.profiles([user], at)[0]
    except redis.RedisError:
        store = "unreachable"
    except StoreNotReadyError as exc:
        store = exc.status
    labels = ui.labels()
    weights = prof.interest if prof is not None else np.zeros(len(labels))
    return {
        "user": user,
        "store": store,
        "version": prof.version if prof is not None else 0,
        "as_of_ms": at,
        "first_ms": prof.first_ms if prof is not None else None,
        "last_ms": prof.last_ms if prof is not None else None,
        "counts": dict(prof.counts) if prof is not None else {},
        "recent": _recent(service, prof, n_events) if prof is not None else [],
        "interest": [
            {"group": g, "label": labels[g], "weight": round(float(w), 6)}
            for g, w in enumerate(weights.tolist())
        ],
    }


def _recent(service: RecommendationService, prof: UserProfile, n: int) -> list[dict[str, Any]]:
    catalog = service.catalog
    rows = zip(prof.recent_items.tolist(), prof.recent_times.tolist(), prof.recent_actions, strict=True)
    return [
        {"item": str(catalog.raw_ids[i]), "title": catalog.title(i), "action": a, "time_ms": t,
         "group": int(catalog.groups[i])}
        for i, t, a in list(rows)[::-1][:n]
    ]  # fmt: skip


# -- the system panel --------------------------------------------------------------------------------
def system_view(service: RecommendationService, ui: UiState) -> dict[str, Any]:
    """Freshness (event time → applied), traffic (QPS, p50 / p99 over the window), the arm split and model
    versions, the replay clock and the dataset's timeline. What cannot be read is null, never an error."""
    now = time.time()
    state = service.replay.read()
    clock_ms = service.now_ms()
    meta, store = None, "ready"
    try:
        meta = service.store.meta()
        store = "missing" if meta is None else meta.status
    except redis.RedisError:
        store = "unreachable"
    try:
        arms = service.stats.read()
    except redis.RedisError:
        arms = {}
    base = ui.window(now, arms, meta.applied if meta is not None else None)
    rate = None
    if base is not None and meta is not None and base[2] is not None:
        rate = round(max(meta.applied - base[2], 0) / (now - base[0]), 2)
    traffic, per_arm = _traffic(arms, base, now, service.describe())
    return {
        "now_ms": int(now * 1000),
        "clock_ms": clock_ms,
        "timeline": ui.timeline(),
        "replay": _replay(state),
        "freshness": {**_freshness(meta, store, clock_ms, now, rate), **_stream_job(service)},
        "traffic": traffic,
        "arms": per_arm,
        "serving": service.describe(),
    }


def _replay(state: ReplayState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "status": state.status, "speed": state.speed, "clock_ms": int(clock_now(state) * 1000),
        "clock_running": state.clock_running, "position": state.position, "published": state.published,
        "total": state.total, "updated_ms": int(state.updated_at * 1000),
    }  # fmt: skip


def _freshness(
    meta: StoreMeta | None, store: str, clock_ms: int, now: float, rate: float | None
) -> dict[str, Any]:
    newest = max(meta.watermarks.values()) if meta is not None and meta.watermarks else None
    return {
        "store": store,
        "applied": meta.applied if meta is not None else None,
        "dead": meta.dead if meta is not None else None,
        "batch": meta.batch if meta is not None else None,
        "newest_event_ms": newest,
        "behind_clock_s": round((clock_ms - newest) / 1000, 3) if newest is not None else None,
        "updated_ms": meta.updated_ms if meta is not None else None,
        "applied_ago_s": round(now - meta.updated_ms / 1000, 3) if meta is not None else None,
        "applied_per_s": rate,
    }


def _stream_job(service: RecommendationService) -> dict[str, Any]:
    """What the stream job records beside its checkpoint (when it runs on this machine): its state, its
    consumer lag, and the produced → visible freshness of its last batch that applied events."""
    folder = stream_dir(service.settings)
    job = _read_json(folder / "job.json") or {}
    last = _last_line(folder / "batches.jsonl") or {}
    return {
        "job": job.get("state"),
        "lag_events": (job.get("last") or {}).get("lag"),
        "freshness_p50_ms": last.get("freshness_p50_ms"),
        "freshness_p99_ms": last.get("freshness_p99_ms"),
        "last_batch_ms": int(last["at"] * 1000) if isinstance(last.get("at"), float | int) else None,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _last_line(path: Path, tail: int = 16_384) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            f.seek(max(f.seek(0, 2) - tail, 0))
            lines = f.read().splitlines()
        value = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _traffic(
    arms: dict[str, dict[str, Any]],
    base: tuple[float, dict[str, dict[str, Any]], int | None] | None,
    now: float,
    serving: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Totals over the served arms (shadows excluded) and each arm's share, between ``base`` and now (since
    the counters started while there is no window yet)."""
    served = {n: a for n, a in arms.items() if not n.startswith("shadow:")}
    win = {n: arm_window(base[1].get(n) if base else None, a) for n, a in served.items()}
    hist: dict[float, int] = {}
    for a in win.values():
        for edge, count in a["latency_buckets_ms"].items():
            hist[float(edge)] = hist.get(float(edge), 0) + int(count)
    requests = sum(int(a["requests"]) for a in win.values())
    errors = sum(int(a["errors"]) for a in win.values())
    span = now - base[0] if base is not None else None
    versions = {n: a.get("versions", {}) for n, a in serving.get("arms", {}).items()}
    traffic = {
        "window_s": round(span, 2) if span else None,
        "requests": requests,
        "qps": round(requests / span, 2) if span else None,
        "p50_ms": _round(bucket_quantile(hist, 0.5)),
        "p99_ms": _round(bucket_quantile(hist, 0.99)),
        "error_rate": errors / requests if requests else 0.0,
    }
    per_arm = {
        n: {"requests": int(a["requests"]), "share": int(a["requests"]) / requests if requests else None,
            "p99_ms": _round(a.get("p99_ms")), "versions": versions.get(n, {})}
        for n, a in win.items()
    }  # fmt: skip
    for n in versions.keys() - per_arm.keys():  # served, not asked yet
        per_arm[n] = {"requests": 0, "share": None, "p99_ms": None, "versions": versions[n]}
    return traffic, per_arm


def _round(value: Any) -> float | None:
    return round(float(value), 2) if isinstance(value, int | float) else None


# -- the live stream ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveSnapshot:
    """What a live stream watches: the profile version (None: unreadable) and the replay clock."""

    version: int | None
    clock_ms: int | None
    status: str | None
    speed: float | str | None

    def moved_from(self, other: LiveSnapshot) -> bool:
        if (self.version, self.status, self.speed) != (other.version, other.status, other.speed):
            return True
        if self.clock_ms is None or other.clock_ms is None:
            return self.clock_ms != other.clock_ms
        return abs(self.clock_ms - other.clock_ms) >= CLOCK_STEP_MS or (
            self.status != "running" and self.clock_ms != other.clock_ms  # a seek while paused
        )


def live_snapshot(service: RecommendationService, user: str) -> LiveSnapshot:
    """Two Redis reads: the profile's version (``HGET``) and the replay state."""
    try:
        raw = service.redis.hget(f"{service.store.prefix}u:{user}", "v")
        version: int | None = int(raw or 0)
    except redis.RedisError:
        version = None
    state = service.replay.read()
    if state is None:
        return LiveSnapshot(version, None, None, None)
    return LiveSnapshot(version, int(clock_now(state) * 1000), state.status, state.speed)


def _event(name: str, seq: int, data: dict[str, Any]) -> str:
    return f"event: {name}\nid: {seq}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def live_events(
    service: RecommendationService, ui: UiState, user: str, lifetime_s: float
) -> AsyncIterator[str]:
    """Server-sent events for ``user``: a ``change`` event at once and whenever the profile version, the
    replay's status or speed changes or its clock moves (a seek; a running clock once per simulated hour);
    after ``lifetime_s`` a ``bye`` event and the end (the page reconnects). The reads run in worker threads
    (``ui.limiter``); the waits are ``anyio.sleep``, so an idle stream holds no thread. A client that goes
    away cancels the stream (Starlette's disconnect listener) at its next await."""
    ui.open_streams.inc()
    reason = "disconnect"
    try:
        yield "retry: 1000\n\n"
        deadline = anyio.current_time() + lifetime_s
        last: LiveSnapshot | None = None
        seq, quiet_since = 0, anyio.current_time()
        while anyio.current_time() < deadline:
            snap = await anyio.to_thread.run_sync(live_snapshot, service, user, limiter=ui.limiter)
            if last is None or snap.moved_from(last):
                seq += 1
                what = "first" if last is None else "profile" if snap.version != last.version else "clock"
                yield _event("change", seq, {"user": user, "reason": what, **snap.__dict__})
                last, quiet_since = snap, anyio.current_time()
            elif anyio.current_time() - quiet_since >= HEARTBEAT_S:
                yield ": keep-alive\n\n"
                quiet_since = anyio.current_time()
            await anyio.sleep(min(LIVE_POLL_S, max(deadline - anyio.current_time(), 0)))
        reason = "lifetime"
        yield _event("bye", seq + 1, {"user": user, "lifetime_s": lifetime_s})
    finally:
        ui.open_streams.dec()
        ui.closed_streams.labels(reason).inc()
