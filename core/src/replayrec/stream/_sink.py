"""The streaming job's sink: one micro-batch (an Arrow table from the source) into the online feature store,
exactly once.

Per batch: read the store's position; if Redis lost the store (no ``meta``) while the log has history, start a
new epoch marked *rebuilding* and replay the log from offset zero; if the store is behind the batch's start
(a rebuild, or a position that moved), catch up from the log; drop rows the store already holds; refuse what
it cannot use (dead letters); apply the rest with the position move in one atomic script.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from replayrec.bus import BusConfig, EventPublisher, InvalidEventError
from replayrec.errors import ReplayrecError
from replayrec.features import (
    TOO_LATE,
    UNKNOWN_ITEM,
    EventColumns,
    FeatureSpec,
    OnlineFeatures,
    StoreMeta,
    build_payload,
    screen,
)
from replayrec.stream._fetch import fetch_range
from replayrec.stream._metrics import StreamMetrics
from replayrec.stream._records import KIND_EVENT, KIND_MALFORMED, KIND_RANGE, record_batch, unpack

__all__ = ["BatchReport", "FeatureSink", "StoreLostError"]

log = logging.getLogger("replayrec.stream")
I64 = npt.NDArray[np.int64]
CATCH_UP_CHUNK = 20_000  # records per catch-up step (bounded memory)


class StoreLostError(ReplayrecError):
    """The store changed under the writer too many times in a row."""


@dataclass
class BatchReport:
    batch: int
    rows: int = 0
    applied: int = 0
    dead: int = 0
    skipped: int = 0  # rows the store already held (a replayed batch)
    caught_up: int = 0  # events applied from the log before this batch (rebuild / catch-up)
    seconds: float = 0.0
    apply_seconds: float = 0.0
    outcome: str = "empty"
    freshness_ms: list[int] = field(default_factory=list)
    dead_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        f = np.asarray(self.freshness_ms, dtype=np.int64)
        q = {f"freshness_p{k}_ms": (float(np.percentile(f, k)) if f.size else None) for k in (50, 95, 99)}
        return {
            "batch": self.batch, "rows": self.rows, "applied": self.applied, "dead": self.dead,
            "skipped": self.skipped, "caught_up": self.caught_up, "seconds": round(self.seconds, 4),
            "apply_seconds": round(self.apply_seconds, 4), "outcome": self.outcome,
            "dead_reasons": dict(self.dead_reasons), **q,
            "freshness_hist": _hist(f),
        }  # fmt: skip


def _hist(f: I64, width: int = 5) -> dict[str, int]:
    """Freshness in ``width``-ms buckets (bucket lower bound → count): mergeable across batches."""
    if not f.size:
        return {}
    b, c = np.unique(np.maximum(f, 0) // width * width, return_counts=True)
    return {str(int(x)): int(y) for x, y in zip(b, c, strict=True)}


class FeatureSink:
    """Applies micro-batches to an :class:`OnlineFeatures` store (one writer per store)."""

    def __init__(
        self,
        store: OnlineFeatures,
        cfg: BusConfig,
        item_index: dict[str, int],
        catalog: str,
        *,
        metrics: StreamMetrics | None = None,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.items = item_index
        self.catalog = catalog
        self.metrics = metrics or StreamMetrics()
        self._publisher = publisher
        self.rebuilds = 0
        self.lock = threading.Lock()  # one batch (or watchdog rebuild) at a time
        self.position: dict[int, int] = {}  # the log position after the last batch this sink applied

    @property
    def publisher(self) -> EventPublisher:
        if self._publisher is None:
            self._publisher = EventPublisher(self.cfg)
        return self._publisher

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    # -- the batch ----------------------------------------------------------------------------------
    def process(self, batch_id: int, table: pa.Table) -> BatchReport:
        with self.lock:
            return self._process(batch_id, table)

    def watch(self, committed: dict[int, int] | None = None) -> bool:
        """Between batches (the job calls it every second): rebuild at once when the store vanished, and
        finish a rebuild a killed job left ``rebuilding``. ``committed`` is the log position Spark has
        committed (known before this process applied a batch). True when it caught up."""
        with self.lock:
            meta = self.store.meta()
            target = self.position or committed or {}
            if meta is not None and meta.status == "rebuilding":
                target = {**target, **meta.rebuild_to}
            elif meta is not None or not any(target.values()):
                return False
            rep = BatchReport(-1)
            self._position(target, rep)
            log.warning("the online store caught up with the log while idle (%d events)", rep.caught_up)
            return True

    def _process(self, batch_id: int, table: pa.Table) -> BatchReport:
        t0 = time.perf_counter()
        if "records" in table.column_names:  # packed by the source (one row per topic partition)
            table = unpack(table)
        rep = BatchReport(batch_id, rows=table.num_rows)
        kind = table.column("kind").to_numpy(zero_copy_only=False)
        part = table.column("partition").to_numpy(zero_copy_only=False).astype(np.int64)
        off = table.column("offset").to_numpy(zero_copy_only=False).astype(np.int64)
        ranges = kind == KIND_RANGE
        if not ranges.any():
            rep.outcome = "empty"
            return rep
        ends = table.column("range_end").to_numpy(zero_copy_only=False)
        start = {int(p): int(o) for p, o in zip(part[ranges], off[ranges], strict=True)}
        end = {int(p): int(e) for p, e in zip(part[ranges], ends[ranges], strict=True)}
        rep.rows = int((~ranges).sum())
        sent: set[str] = set()  # dead letters already written for this batch (not again on a retry)
        for attempt in range(4):
            try:
                meta = self._position(start, rep)
            except StoreLostError as exc:  # the store went away during the catch-up: start over
                log.warning("batch %d: %s; retry %d", batch_id, exc, attempt)
                continue
            have = {p: meta.offsets.get(p, 0) for p in end}
            new = (~ranges) & (off >= np.array([have.get(int(p), 0) for p in part], dtype=np.int64))
            rep.skipped = int(((~ranges) & ~new).sum())
            target = {**meta.offsets, **{p: max(have[p], end[p]) for p in end}}
            if all(target[p] == have[p] for p in end):
                rep.outcome = "duplicate" if rep.skipped else "empty"
                self.position = target
                break
            outcome = self._apply_rows(meta, table, new, kind, target, batch_id, rep, sent)
            if outcome == "ok":
                rep.outcome = "applied"
                self.position = target
                break
            log.warning(
                "batch %d: the store changed under the writer (%s); retrying (%d)", batch_id, outcome, attempt
            )
        else:
            raise StoreLostError(f"batch {batch_id}: the online store kept changing under the writer")
        rep.seconds = time.perf_counter() - t0
        self.metrics.observe(rep)
        return rep

    def _position(self, start: dict[int, int], rep: BatchReport) -> StoreMeta:
        """The store's meta, after (re)initialising it and catching up to ``start`` when needed."""
        meta = self.store.meta()
        if meta is None:
            history = any(o > 0 for o in start.values())
            if history:
                log.warning(
                    "the online store is gone (Redis flushed or restarted): rebuilding it from the log"
                )
                self.rebuilds += 1
                self.metrics.rebuilds.inc()
            meta = self.store.initialise(self.catalog, rebuild_to=start if history else None)
        self.store.check_compatible(meta, self.catalog)
        if any(meta.offsets.get(p, 0) < s for p, s in start.items()):
            meta = self.catch_up(meta, start, rep)
        return meta

    def catch_up(self, meta: StoreMeta, target: dict[int, int], rep: BatchReport) -> StoreMeta:
        """Apply the log from the store's position up to ``target``, in bounded chunks."""
        while True:
            pos = {p: meta.offsets.get(p, 0) for p in target}
            todo = {p: target[p] - pos[p] for p in target if target[p] > pos[p]}
            if not todo:
                return meta
            per = max(CATCH_UP_CHUNK // len(todo), 1)
            stop = {p: (min(pos[p] + per, target[p]) if p in todo else pos[p]) for p in target}
            ranges = [(p, pos[p], stop[p]) for p in todo]
            table = pa.Table.from_batches([record_batch(ranges, fetch_range(self.cfg, ranges))])
            kind = table.column("kind").to_numpy(zero_copy_only=False)
            ev, _ = self._events(table.filter(pa.array(kind == KIND_EVENT)))
            malformed = int((kind == KIND_MALFORMED).sum())  # dead-lettered when first read; counted again
            usable, _, wm = screen(ev, meta.watermarks, self.store.spec)
            dead = int((~usable).sum()) + malformed
            payload = build_payload(ev.take(usable), self.store.groups, self.store.spec)
            res = self.store.apply(meta, payload, {**meta.offsets, **stop}, wm, batch=meta.batch, dead=dead)
            if res.status != "ok":
                raise StoreLostError(f"catching up: the online store changed under the writer ({res.status})")
            rep.caught_up += payload.events
            meta = self.store.meta() or meta

    def _events(self, ev_rows: pa.Table) -> tuple[EventColumns, dict[str, list[Any]]]:
        """The decoded events of record rows, in log order, items mapped to the catalogue's dense ids."""
        cols = {n: ev_rows.column(n).to_pylist() for n in ("user", "item", "action", "raw")}
        ev = EventColumns(
            ev_rows.column("partition").to_numpy(zero_copy_only=False).astype(np.int64),
            ev_rows.column("offset").to_numpy(zero_copy_only=False).astype(np.int64),
            cols["user"],
            np.array([self.items.get(i, -1) for i in cols["item"]], dtype=np.int64),
            ev_rows.column("time_ms").to_numpy(zero_copy_only=False).astype(np.int64),
            cols["action"],
            ev_rows.column("produced_ms").to_numpy(zero_copy_only=False).astype(np.int64),
        )
        order = np.lexsort((ev.offset, ev.partition))
        if not np.array_equal(order, np.arange(len(ev))):
            ev = _reorder(ev, order)
            cols = {n: [v[i] for i in order.tolist()] for n, v in cols.items()}
        return ev, cols

    def _apply_rows(
        self,
        meta: StoreMeta,
        table: pa.Table,
        new: npt.NDArray[np.bool_],
        kind: npt.NDArray[Any],
        target: dict[int, int],
        batch_id: int,
        rep: BatchReport,
        sent: set[str],
    ) -> str:
        rows = table.filter(pa.array(new))
        k = kind[new]
        ev, cols = self._events(rows.filter(pa.array(k == KIND_EVENT)))
        bad_rows = rows.filter(pa.array(k == KIND_MALFORMED))
        usable, reasons, wm = screen(ev, meta.watermarks, self.store.spec)
        self._dead_letter(ev, cols, usable, reasons, bad_rows, rep, sent)
        payload = build_payload(ev.take(usable), self.store.groups, self.store.spec)
        res = self.store.apply(meta, payload, target, wm, batch=batch_id, dead=rep.dead)
        rep.apply_seconds = res.seconds
        if res.status == "ok":
            now = int(time.time() * 1000)
            rep.applied = payload.events
            rep.freshness_ms = (now - ev.produced[usable]).tolist()
        return res.status

    def _dead_letter(
        self,
        ev: EventColumns,
        cols: dict[str, list[Any]],
        usable: npt.NDArray[np.bool_],
        reasons: list[str | None],
        bad: pa.Table,
        rep: BatchReport,
        sent: set[str],
    ) -> None:
        rep.dead = 0
        rep.dead_reasons.clear()
        topic = self.cfg.events_topic
        letters: list[tuple[str, bytes, InvalidEventError]] = []
        for i in np.flatnonzero(~usable).tolist():
            reason = reasons[i] or "unusable"
            origin = f"{topic}:{int(ev.partition[i])}:{int(ev.offset[i])}"
            letters.append(
                (
                    origin,
                    cols["raw"][i] or b"",
                    InvalidEventError(reason, _why(reason, ev, cols, i, self.store.spec)),
                )
            )
        bad_cols = (bad.column(n).to_pylist() for n in ("partition", "offset", "reason", "message", "raw"))
        for p, o, reason, message, raw in zip(*bad_cols, strict=True):
            letters.append((f"{topic}:{p}:{o}", raw or b"", InvalidEventError(reason, message)))
        for origin, original, err in letters:
            if origin not in sent:
                self.publisher.dead_letter(original, err, origin)
                sent.add(origin)
            rep.dead_reasons[err.reason] += 1
        rep.dead = sum(rep.dead_reasons.values())
        if rep.dead:
            self.publisher.flush()


def _why(reason: str, ev: EventColumns, cols: dict[str, list[Any]], i: int, spec: FeatureSpec) -> str:
    if reason == UNKNOWN_ITEM:
        return f"item {cols['item'][i]!r} is not in the catalogue"
    if reason == TOO_LATE:
        return f"event at {int(ev.times[i])} ms: over {spec.lateness_s} s behind its partition"
    return f"event at {int(ev.times[i])} ms: over {spec.max_ahead_s} s ahead of when it was produced"


def _reorder(ev: EventColumns, order: I64) -> EventColumns:
    idx = order.tolist()
    return EventColumns(
        ev.partition[order], ev.offset[order], [ev.users[i] for i in idx], ev.items[order], ev.times[order],
        [ev.actions[i] for i in idx], ev.produced[order],
    )  # fmt: skip
