"""The service's work, one instance per worker process: recommendations from the online profile through the
routed cascade (cached by profile version), live ingest, feedback, readiness. The routes only translate HTTP.

Degraded, never down: Redis unreachable → the request's own history, else the in-memory popularity list;
a stage that fails or overruns → the previous stage's order; broker unreachable → 503 with Retry-After for
events (nothing acknowledged is lost). Every such answer says ``degraded`` and is counted.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import redis
from threadpoolctl import threadpool_limits

from replayrec.application import open_dataset
from replayrec.bus import (
    BusConfig,
    BusUnavailableError,
    EventPublisher,
    IngestResult,
    RedisStateStore,
    broker_reachable,
    clock_now,
)
from replayrec.cascade import read_cascade_layout
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.features import (
    FeatureSpec,
    ItemTimeline,
    OnlineFeatures,
    StoreNotReadyError,
    UserProfile,
    view_namespace,
)
from replayrec.stages import Candidate, Request, StageContext
from replayrec_serving._engine import (
    LoadedArm,
    Outcome,
    StageRun,
    explain,
    popularity_candidates,
    run_cascade,
)
from replayrec_serving._experiment import ExperimentStore, bucket
from replayrec_serving._items import OnlineItemClock
from replayrec_serving._metrics import ArmStats, ServiceMetrics
from replayrec_serving._models import ModelManager
from replayrec_serving._settings import ServiceSettings, default_serving_cascade

__all__ = ["EventsOutcome", "RecommendationService"]

log = logging.getLogger("replayrec.serving")
HISTORY = FeatureSpec().recent_events
LAST_SERVED_TTL_S = 86_400
#: the arm name that asks for the service's recent popularity itself (``?arm=popularity``)
POPULARITY = "popularity"


class UnknownArmError(ReplayrecError):
    """``?arm=`` names no arm this worker serves."""


@dataclass
class EventsOutcome:
    status: int
    body: dict[str, Any]
    retry_after_s: int | None = None


@dataclass
class _Answer:
    rows: list[dict[str, Any]]
    degraded: list[str] = field(default_factory=list)
    stages: list[StageRun] = field(default_factory=list)
    cold_start: bool = False


class RecommendationService:
    """Everything one worker holds: the dataset's catalogue, the models, the stores, the metrics."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        self.dataset = open_dataset(settings, settings.dataset)
        self.catalog = self.dataset.catalog
        self.bus = BusConfig.from_settings(settings)
        self.redis: Any = redis.Redis.from_url(
            settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25, retry_on_timeout=False
        )
        self.store = OnlineFeatures(self.redis, settings.bus_namespace, self.catalog.groups)
        self.replay = RedisStateStore(settings.redis_url, settings.bus_namespace)
        self.experiments = ExperimentStore(self.redis, settings.bus_namespace)
        self.stats = ArmStats(self.redis, settings.bus_namespace)
        self.prefix = f"{settings.bus_namespace}:serve:"
        train = self.dataset.interactions()
        if settings.train_until is not None:  # the shop as of the models' training cut
            train = train.subset(train.timestamp < settings.train_until)
        self.train = train
        self.offline_items = ItemTimeline.from_interactions(train)
        self.item_clock = OnlineItemClock(
            self.store,
            self.offline_items,
            settings.item_stats_ttl_s,
            self.metrics.errors.labels("item-stats").inc,
        )
        self._views: dict[str, tuple[OnlineFeatures, OnlineItemClock]] = {}
        self._views_lock = threading.Lock()
        layout = read_cascade_layout(settings.cascade or default_serving_cascade())
        self.models = ModelManager(
            settings, self.dataset, layout, self._context(self.item_clock),
            registry_uri=settings.tracking_uri, warmup_requests=settings.warmup_requests,
            canary_enabled=settings.canary_fraction > 0,
            view_context=lambda view: self._context(self.view(view)[1]),
        )  # fmt: skip
        self.models.listeners.append(self._on_model_event)
        self._popular, self._popular_scores = self._offline_popularity(train)
        self._end_ms = int(train.timestamp.max()) * 1000 + 1000 if len(train) else int(time.time() * 1000)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stage")
        self.shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._shadow_busy = threading.Semaphore(4)
        self._publisher: EventPublisher | None = None
        self._pub_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clock: tuple[float, int | None] = (0.0, None)
        self._experiment_raw: bytes | None = None
        self._rng = random.Random(settings.seed)
        self._limits: Any = None
        self._items_by_raw = {str(r): i for i, r in enumerate(self.catalog.raw_ids.tolist())}
        self._pop_cache: tuple[tuple[str, int, int], float, list[tuple[int, int]]] | None = None
        self._as_of: dict[str, tuple[float, int | None]] = {}
        self.limiter = anyio.CapacityLimiter(settings.inflight)

    def _context(self, clock: OnlineItemClock) -> StageContext:
        return StageContext(
            catalog=self.catalog, train=self.train, seed=self.settings.seed, extras={"clock": clock}
        )

    def view(self, name: str | None) -> tuple[OnlineFeatures, OnlineItemClock]:
        """The store (and item statistics) an arm reads: the live one, or the snapshot view ``name``."""
        if name is None:
            return self.store, self.item_clock
        with self._views_lock:
            got = self._views.get(name)
            if got is None:
                ns = view_namespace(self.settings.bus_namespace, name)
                store = OnlineFeatures(self.redis, ns, self.catalog.groups)
                clock = OnlineItemClock(
                    store, self.offline_items, self.settings.item_stats_ttl_s,
                    self.metrics.errors.labels("item-stats").inc,
                )  # fmt: skip
                got = self._views[name] = (store, clock)
            return got

    def _view_as_of(self, name: str, store: OnlineFeatures) -> int | None:
        """The moment the snapshot view ``name`` stands for (re-read at most once a second)."""
        hit = self._as_of.get(name)
        if hit is not None and time.monotonic() - hit[0] < 1.0:
            return hit[1]
        try:
            value = store.as_of_ms()
        except redis.RedisError:
            value = hit[1] if hit is not None else None
        self._as_of[name] = (time.monotonic(), value)
        return value

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Load the models (and the stored experiment), then keep watching both."""
        self._limits = threadpool_limits(1)  # one BLAS thread per worker: requests are the parallelism
        self._poll_experiment()
        if self.models.arms.prod is None:
            self.models.reload()
        self.metrics.set_models(self.models.arms.all())
        gc.collect()
        gc.freeze()  # the catalogue, models and indexes live as long as the worker: keep them out of GC scans
        if background:
            for target, name in ((self._watch_registry, "registry"), (self._watch_experiment, "experiment")):
                t = threading.Thread(target=target, name=f"watch-{name}", daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.shadow_pool.shutdown(wait=False, cancel_futures=True)
        with self._pub_lock:
            if self._publisher is not None:
                self._publisher.close(timeout_s=5)
                self._publisher = None
        self.replay.close()
        self.redis.close()

    def _watch_registry(self) -> None:
        while not self._stop.wait(self.settings.registry_poll_s):
            self.reload()

    def _watch_experiment(self) -> None:
        while not self._stop.wait(self.settings.experiment_poll_s):
            self._poll_experiment()

    def reload(self) -> dict[str, Any]:
        try:
            arms = self.models.reload()
        except Exception as exc:  # the watcher must survive anything a registry does
            log.warning(f"reload failed: {exc}")
            self.metrics.errors.labels("reload").inc()
            arms = self.models.arms
        self.metrics.set_models(arms.all())
        return self.describe()

    def _poll_experiment(self) -> None:
        try:
            raw = self.experiments.raw()
        except redis.RedisError:
            return  # keep the experiment this worker has; Redis is back soon or the answers are degraded
        if raw == self._experiment_raw:
            return
        try:
            exp = None if raw is None else self.experiments.decode(raw)
        except ConfigError as exc:
            log.warning(f"ignoring the stored experiment: {exc}")
            self._experiment_raw = raw
            return
        try:
            arms = self.models.reload(exp)
        except Exception as exc:
            log.warning(f"experiment not applied: {exc}")
            self.metrics.errors.labels("experiment").inc()
            return
        applied = arms.experiment == exp
        if applied:
            self._experiment_raw = raw
        self.metrics.set_models(arms.all())

    def _on_model_event(self, what: str, arm: LoadedArm | None, detail: str) -> None:
        self.metrics.swaps.labels(what).inc()
        if what == "loaded" and arm is not None:
            self.stats.reset(arm.name, arm.key)

    def describe(self) -> dict[str, Any]:
        arms = self.models.arms
        exp = arms.experiment
        return {
            "arms": {a.name: a.describe() for a in arms.all()},
            "experiment": None if exp is None else exp.model_dump(mode="json"),
            "canary": {"fraction": self.settings.canary_fraction, "salt": self.settings.canary_salt},
            "refused": dict(self.models.refused),
            "swaps": self.models.swaps,
        }

    # -- time -----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The replay clock when a replay runs (read at most every 200 ms), else the end of the data."""
        t, value = self._clock
        if time.monotonic() - t > 0.2:
            state = self.replay.read()
            value = int(clock_now(state) * 1000) if state is not None else None
            self._clock = (time.monotonic(), value)
        return value if value is not None else self._end_ms

    # -- routing --------------------------------------------------------------------------------------
    def dense_user(self, user: str) -> int:
        try:
            return self.dataset.user_id(user)
        except ReplayrecError:  # a user the models never saw (new to the shop): -1, the cold-start user
            return -1

    def arm_named(self, name: str) -> LoadedArm | None:
        """A served arm by name (``prod``, ``canary``, ``ab:<arm>``; ``popularity``: None, the service's own
        recent popularity). :class:`UnknownArmError` names the others."""
        if name == POPULARITY:
            return None
        arms = {a.name: a for a in self.models.arms.all()}
        if name not in arms:
            known = ", ".join(sorted([*arms, POPULARITY]))
            raise UnknownArmError(f"arm {name!r} is not served here; the arms are: {known}")
        return arms[name]

    def route(self, user: str) -> LoadedArm | None:
        arms = self.models.arms
        uid = self.dense_user(user)
        if arms.canary is not None and arms.prod is not None:
            key: str | int = uid if uid >= 0 else user  # known users hash as the pipeline hashes them
            if bucket(key, self.settings.canary_salt) < self.settings.canary_fraction:
                return arms.canary
        if arms.experiment is not None and arms.experiment_arms:
            name = arms.experiment.arm_for(user)
            return arms.prod if name is None else arms.experiment_arms.get(name, arms.prod)
        return arms.prod

    # -- recommendations ------------------------------------------------------------------------------
    def recommend(
        self,
        user: str,
        k: int,
        explain_it: bool = False,
        history: list[str] | None = None,
        use_cache: bool = True,
        arm_override: str | None = None,
    ) -> dict[str, Any]:
        """The user's top ``k`` from the routed arm (or ``arm_override``, an admin's choice). A failure is
        counted (``status="error"``, and in the arm's numbers) before it propagates as a 500."""
        t0 = time.perf_counter()
        at_ms = self.now_ms()
        arm = self.route(user) if arm_override is None else self.arm_named(arm_override)
        arm_name = arm.name if arm is not None else (arm_override or "fallback")
        try:
            return self._recommend(t0, at_ms, arm, arm_name, user, k, explain_it, history, use_cache,
                                   arm_override)  # fmt: skip
        except Exception:
            self._finish(arm_name, arm, t0, "error", degraded=False, counted=arm_override is None, error=True)
            raise

    def _recommend(
        self,
        t0: float,
        at_ms: int,
        arm: LoadedArm | None,
        arm_name: str,
        user: str,
        k: int,
        explain_it: bool,
        history: list[str] | None,
        use_cache: bool,
        arm_override: str | None,
    ) -> dict[str, Any]:
        degraded: list[str] = []
        profile: UserProfile | None = None
        view = arm.features if arm is not None else None
        store, _ = self.view(view)
        if view is not None:  # a snapshot answers as of the moment it stands for, as a batch system would
            as_of = self._view_as_of(view, store)
            at_ms = min(at_ms, as_of) if as_of is not None else at_ms
        try:
            profile = store.profiles([user], at_ms)[0]
        except redis.RedisError:
            degraded.append("redis-unreachable")
        except StoreNotReadyError as exc:
            degraded.append(f"store-{exc.status}")
        cache_key = None
        if profile is not None and profile.version > 0 and arm is not None and self.settings.cache_ttl_s:
            cache_key = (
                f"{self.prefix}cache:{arm.name}:{arm.key}:{k}:{int(explain_it)}:{user}:{profile.version}"
            )
            cached = self._cache_get(cache_key) if use_cache else None
            if cached is not None:
                cached.update(request_id=uuid.uuid4().hex, cached=True, as_of_ms=at_ms)
                self._finish(arm_name, arm, t0, "ok", degraded=False, counted=arm_override is None)
                return cached
        request = self._request(user, at_ms, profile, history)
        if arm is None and arm_name != POPULARITY:
            degraded.append("no-model-loaded")
        answer = self._answer(arm, request, k, explain_it, at_ms, degraded, store)
        body = {
            "user": user,
            "request_id": uuid.uuid4().hex,
            "arm": arm_name,
            "versions": dict(arm.versions) if arm is not None else {},
            "degraded": bool(answer.degraded),
            "degraded_reasons": answer.degraded,
            "cold_start": answer.cold_start,
            "cached": False,
            "as_of_ms": at_ms,
            "profile_version": profile.version if profile is not None else None,
            "items": answer.rows,
        }
        if explain_it:
            body["stages"] = [{"stage": s.stage, "status": s.status, "ms": round(s.ms, 3), "detail": s.detail}
                              for s in answer.stages]  # fmt: skip
        cache = cache_key if not answer.degraded else None
        self._remember(user, arm_name, answer.rows, cache, body, shown=arm_override is None)
        status = "degraded" if answer.degraded else "ok"
        self._finish(arm_name, arm, t0, status, degraded=bool(answer.degraded), counted=arm_override is None)
        for reason in answer.degraded:
            self.metrics.degraded.labels(reason.split(":")[0]).inc()
        return body

    def _request(
        self, user: str, at_ms: int, profile: UserProfile | None, history: list[str] | None
    ) -> Request:
        uid = self.dense_user(user)
        ts = at_ms // 1000
        if profile is not None:
            times = profile.recent_times // 1000
            return Request.create(uid, ts, profile.recent_items, times, exclude=profile.exclude)
        if history:  # Redis is gone: the request's own history (the shop's raw ids, oldest first)
            index = self._items_by_raw
            items = np.array([index[h] for h in history if h in index][-HISTORY:], dtype=np.int64)
            return Request.create(uid, ts, items)
        return Request.create(uid, ts)

    def _answer(
        self,
        arm: LoadedArm | None,
        request: Request,
        k: int,
        explain_it: bool,
        at_ms: int,
        degraded: list[str],
        store: OnlineFeatures,
    ) -> _Answer:
        reachable = not any(r.startswith(("redis", "store")) for r in degraded)
        if request.history.size == 0 or arm is None:  # cold start (or nothing loaded): recent popularity
            cands = self.popular(request, k, at_ms, live=reachable, store=store)
            rows = self._rows(cands, None, request, explain_it, None)
            return _Answer(rows, degraded, [], cold_start=request.history.size == 0)

        def fallback(req: Request, n: int) -> list[Candidate]:
            return self.popular(req, n, at_ms, live=reachable, store=store)

        budgets = {str(k): v for k, v in self.settings.budget_ms.items()}
        faults = {str(k): v for k, v in self.settings.faults.items()}
        out = run_cascade(arm, request, k, self.pool, budgets, fallback, faults, self._rng)
        for s in out.stages:
            self.metrics.stage.labels(s.stage, arm.name, s.status).observe(s.ms / 1000)
            if s.status in ("error", "timeout"):
                degraded.append(f"{s.stage}-{s.status}")
                self.metrics.errors.labels(f"stage-{s.stage}").inc()
        self._shadow(request, k, out)
        rows = self._rows(out.items, out, request, explain_it, arm)
        return _Answer(rows, degraded, out.stages)

    def _rows(
        self,
        cands: list[Candidate],
        out: Outcome | None,
        request: Request,
        explain_it: bool,
        arm: LoadedArm | None,
    ) -> list[dict[str, Any]]:
        rows = [
            {"rank": i + 1, "item": str(self.catalog.raw_ids[c.item]), "title": self.catalog.title(c.item),
             "score": round(float(c.score), 6)}
            for i, c in enumerate(cands)
        ]  # fmt: skip
        if explain_it:
            outcome = out or Outcome(cands, [], {}, {})
            for row, why in zip(
                rows, explain(outcome, request, self.catalog, arm.vectors if arm else None), strict=True
            ):
                row["explanation"] = why
        return rows

    # -- popularity -----------------------------------------------------------------------------------
    def _offline_popularity(self, train: Any) -> tuple[list[int], list[float]]:
        """The in-memory fallback: the most consumed items of the last ``popularity_window_days`` of the
        events the service started with (ties by all-time count, then id)."""
        if len(train) == 0:
            return list(range(min(self.catalog.n_items, 1000))), [0.0] * min(self.catalog.n_items, 1000)
        t_end = int(train.timestamp.max())
        recent = train.timestamp >= t_end - self.settings.popularity_window_days * 86_400
        counts = np.bincount(train.item[recent], minlength=self.catalog.n_items).astype(np.float64)
        score = counts + train.item_counts / (train.item_counts.max() + 1.0)
        order = np.lexsort((np.arange(score.size), -score))[:2000]
        return order.tolist(), score[order].tolist()

    def popular(
        self,
        request: Request,
        k: int,
        at_ms: int,
        live: bool = True,
        store: OnlineFeatures | None = None,
    ) -> list[Candidate]:
        """Recent popularity as of ``at_ms``: the online store's (or the arm's view's) per-day counts, else
        the in-memory list."""
        exclude = set(request.exclude.tolist())
        if live:
            try:
                ranked = self._live_popular(at_ms, k + len(exclude), store or self.store)
                if ranked:
                    items, counts = zip(*ranked, strict=True)
                    got = popularity_candidates(items, [float(c) for c in counts], exclude, k)
                    if len(got) >= min(k, self.catalog.n_items - len(exclude)):
                        return got
            except (redis.RedisError, StoreNotReadyError):
                pass
        return popularity_candidates(self._popular, self._popular_scores, exclude, k)

    def _live_popular(self, at_ms: int, n: int, store: OnlineFeatures) -> list[tuple[int, int]]:
        key = (store.prefix, at_ms // 60_000, n)  # a minute of replay time reuses the list
        hit = self._pop_cache
        if hit is not None and hit[0] == key and time.monotonic() - hit[1] < 1.0:
            return list(hit[2])
        ranked = store.popular(at_ms, self.settings.popularity_window_days, n)
        self._pop_cache = (key, time.monotonic(), ranked)
        return ranked

    # -- cache, memory of what was shown, shadow ----------------------------------------------------------
    def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.redis.get(key)
        except redis.RedisError:
            return None
        self.metrics.cache.labels("hit" if raw is not None else "miss").inc()
        if raw is None:
            return None
        try:
            value: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None
        return value

    def _remember(
        self,
        user: str,
        arm: str,
        rows: list[dict[str, Any]],
        cache_key: str | None,
        body: dict[str, Any],
        shown: bool = True,
    ) -> None:
        """The list shown (for online HR: was the user's next event in it?) and the cached answer. An
        admin's forced-arm answer (``shown=False``) was not shown to the user: it is only cached."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            if shown:
                last = json.dumps({"arm": arm, "items": [r["item"] for r in rows]})
                pipe.set(f"{self.prefix}last:{user}", last, ex=LAST_SERVED_TTL_S)
            if cache_key is not None:
                pipe.set(cache_key, json.dumps(body), ex=self.settings.cache_ttl_s)
            pipe.execute()
        except redis.RedisError:
            pass

    def _finish(
        self,
        arm_name: str,
        arm: LoadedArm | None,
        t0: float,
        status: str,
        degraded: bool,
        counted: bool = True,
        error: bool = False,
    ) -> None:
        """Prometheus sees every request; the per-arm numbers (the canary gate's, A/B's) only the routed
        ones — an admin's forced-arm request is not traffic."""
        seconds = time.perf_counter() - t0
        self.metrics.requests.labels("recommendations", arm_name, status).observe(seconds)
        if counted:
            key = arm.key if arm is not None else "-"
            self.stats.record(arm_name, key, seconds * 1000, error=error, degraded=degraded)

    def _shadow(self, request: Request, k: int, shown: Outcome) -> None:
        arm = self.models.arms.shadow
        if arm is None or not self._shadow_busy.acquire(blocking=False):
            return  # never queue behind a slow shadow: skip the comparison instead
        items = {c.item for c in shown.items}

        def score() -> None:
            try:
                got = arm.cascade.recommend(request, k)
                overlap = len(items & {c.item for c in got}) / max(len(items), 1)
                self.metrics.shadow_overlap.labels(arm.name).observe(overlap)
                self.stats.record(arm.name, arm.key, 0.0, error=False, degraded=False)
            except Exception:
                self.metrics.errors.labels("shadow").inc()
            finally:
                self._shadow_busy.release()

        self.shadow_pool.submit(score)

    # -- events and feedback ----------------------------------------------------------------------------
    def _get_publisher(self) -> EventPublisher:
        with self._pub_lock:
            if self._publisher is None:
                self._publisher = EventPublisher(self.bus)
            return self._publisher

    def _drop_publisher(self, pub: EventPublisher) -> None:
        with self._pub_lock:
            if self._publisher is pub:
                self._publisher = None
        pub.close(timeout_s=0)

    def ingest(self, payloads: list[Any]) -> EventsOutcome:
        """Validate and produce; 202 once the broker acknowledged every valid event, 503 + Retry-After when
        it cannot take them (the unacknowledged ones are listed: the client re-sends exactly those)."""
        if not broker_reachable(self.bus):
            self.metrics.events.labels("unavailable").inc(len(payloads))
            return EventsOutcome(
                503, {"detail": f"the event broker at {self.bus.bootstrap_servers} is unreachable; retry"}, 5
            )
        try:
            pub = self._get_publisher()
        except BusUnavailableError as exc:
            self.metrics.events.labels("unavailable").inc(len(payloads))
            return EventsOutcome(503, {"detail": str(exc)}, 5)
        res: IngestResult = pub.ingest(payloads, origin="api", flush_timeout_s=5.0)
        body: dict[str, Any] = {
            "accepted": res.accepted,
            "rejected": [{"index": r.index, "reason": r.reason, "message": r.message} for r in res.rejected],
            "failed": res.failed,
        }
        self.metrics.events.labels("accepted").inc(len(res.accepted))
        self.metrics.events.labels("rejected").inc(len(res.rejected))
        if res.failed:
            self.metrics.events.labels("failed").inc(len(res.failed))
            self._drop_publisher(pub)
            body["detail"] = f"the broker did not acknowledge {len(res.failed)} event(s); re-send those"
            return EventsOutcome(503, body, 5)
        self._online_hits(payloads, res)
        if not res.accepted and res.rejected:
            body["detail"] = "no valid event (each refusal is listed; they are on the dead-letter topic)"
            return EventsOutcome(422, body)
        return EventsOutcome(202, body)

    def _online_hits(self, payloads: list[Any], res: IngestResult) -> None:
        """For each accepted event: was its item in the last list shown to its user? (online HR per arm)"""
        refused = {r.index for r in res.rejected}
        pairs = [
            (str(p.get("user")), str(p.get("item")))
            for i, p in enumerate(payloads)
            if i not in refused and isinstance(p, dict)
        ]
        if not pairs:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for user, _ in pairs:
                pipe.getdel(f"{self.prefix}last:{user}")
            shown = pipe.execute()
        except redis.RedisError:
            return
        for (_, item), raw in zip(pairs, shown, strict=True):
            if raw is None:
                continue
            try:
                last = json.loads(raw)
            except ValueError:
                continue
            hit = item in set(last.get("items", []))
            self.metrics.hits.labels(last.get("arm", "?"), "yes" if hit else "no").inc()
            self.stats.add(str(last.get("arm", "?")), events=1, hits=int(hit))

    def feedback(self, arm: str, impressions: list[str], clicks: list[str]) -> dict[str, Any]:
        self.metrics.feedback.labels(arm, "impression").inc(len(impressions))
        self.metrics.feedback.labels(arm, "click").inc(len(clicks))
        self.stats.add(arm, impressions=len(impressions), clicks=len(clicks))
        return {"arm": arm, "impressions": len(impressions), "clicks": len(clicks)}

    def known_arms(self) -> set[str]:
        return {a.name for a in self.models.arms.all()} | {"fallback"}

    # -- health ---------------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        arms = self.models.arms
        checks: dict[str, Any] = {"models": arms.prod is not None}
        try:
            checks["redis"] = bool(self.redis.ping())
        except redis.RedisError as exc:
            checks["redis"] = False
            checks["redis_error"] = str(exc)
        checks["broker"] = broker_reachable(self.bus)
        try:
            meta = self.store.meta()
            checks["store"] = meta.status if meta is not None else "missing"
        except redis.RedisError:
            checks["store"] = "unreachable"
        ok = bool(checks["models"] and checks["redis"] and checks["broker"])
        return ok, checks
