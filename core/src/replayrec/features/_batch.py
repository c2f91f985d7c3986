"""A batch of events as the stream applies it: which events are usable (catalogue, lateness) and the
aggregated writes they make to the online store."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from replayrec.features._spec import FeatureSpec, day_of

__all__ = ["EventColumns", "Payload", "build_payload", "canonical_offsets", "screen"]

I64 = npt.NDArray[np.int64]

#: dead-letter reasons of the stream job (beside the bus's own decoding reasons)
UNKNOWN_ITEM = "unknown_item"
TOO_LATE = "too_late"
FROM_THE_FUTURE = "from_the_future"


def canonical_offsets(offsets: dict[int, int]) -> str:
    """The one JSON text of a partition → offset map (the stored guard compares texts)."""
    return json.dumps({str(p): int(offsets[p]) for p in sorted(offsets)}, separators=(",", ":"))


def parse_offsets(text: str | None) -> dict[int, int]:
    return {int(p): int(o) for p, o in json.loads(text or "{}").items()}


@dataclass(frozen=True, eq=False)
class EventColumns:
    """Decoded events in log order (sorted by partition, then offset): parallel arrays."""

    partition: I64
    offset: I64
    users: list[str]
    items: I64  # dense item id, -1 when the item is not in the catalogue
    times: I64  # event time, Unix ms
    actions: list[str]
    produced: I64  # when the producer sent it (the record timestamp), Unix ms

    def __len__(self) -> int:
        return int(self.partition.size)

    def take(self, mask: npt.NDArray[np.bool_]) -> EventColumns:
        idx = np.flatnonzero(mask).tolist()
        return EventColumns(
            self.partition[mask], self.offset[mask], [self.users[i] for i in idx], self.items[mask],
            self.times[mask], [self.actions[i] for i in idx], self.produced[mask],
        )  # fmt: skip


def screen(
    ev: EventColumns, watermarks: dict[int, int], spec: FeatureSpec
) -> tuple[npt.NDArray[np.bool_], list[str | None], dict[int, int]]:
    """Which events the store can use: ``(usable, reason of each refused one, new watermarks)``.

    An event dated more than ``max_ahead_s`` after its record was produced is refused (``from_the_future``)
    and moves nothing; so is one more than ``lateness_s`` older than the newest earlier event of its
    partition (``too_late``); an item outside the catalogue is refused (``unknown_item``). The watermark of a
    partition is the newest event time it has carried: the rules depend on the log alone (event times and
    record timestamps), never on batch boundaries.
    """
    wm = dict(watermarks)
    usable = np.ones(len(ev), dtype=bool)
    reasons: list[str | None] = [None] * len(ev)
    late, ahead = spec.lateness_ms, spec.max_ahead_ms
    rows = zip(ev.partition.tolist(), ev.times.tolist(), ev.items.tolist(), ev.produced.tolist(), strict=True)
    for i, (p, t, it, made) in enumerate(rows):
        if made > 0 and t > made + ahead:
            usable[i], reasons[i] = False, FROM_THE_FUTURE
            continue
        mark = wm.get(p)
        if mark is not None and t < mark - late:
            usable[i], reasons[i] = False, TOO_LATE
            continue
        wm[p] = t if mark is None else max(mark, t)
        if it < 0:
            usable[i], reasons[i] = False, UNKNOWN_ITEM
    return usable, reasons, wm


@dataclass
class _User:
    n: int = 0
    first: int = 2**62
    last: int = -1
    recent: list[str] = field(default_factory=list)
    items: set[int] = field(default_factory=set)
    interest: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)


@dataclass
class _Item:
    n: int = 0
    first: int = 2**62
    last: int = -1
    days: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class Payload:
    """The aggregated writes of a batch (what the apply script takes, as JSON)."""

    users: list[list[Any]]
    items: list[list[Any]]
    popular: list[list[Any]]
    counters: list[list[Any]]
    events: int

    def to_json(self) -> str:
        return json.dumps(
            {"u": self.users, "i": self.items, "p": self.popular, "g": self.counters}, separators=(",", ":")
        )


def build_payload(ev: EventColumns, groups: I64, spec: FeatureSpec) -> Payload:
    """Aggregate usable events (log order) into per-user, per-item, popularity and global increments."""
    users: dict[str, _User] = defaultdict(_User)
    items: dict[int, _Item] = defaultdict(_Item)
    pop: Counter[tuple[int, int]] = Counter()
    glob: Counter[str] = Counter()
    days = day_of(ev.times).tolist()
    grp = groups[ev.items].tolist() if len(ev) else []
    for u, it, t, a, d, g in zip(
        ev.users, ev.items.tolist(), ev.times.tolist(), ev.actions, days, grp, strict=True
    ):
        us = users[u]
        us.n += 1
        us.first, us.last = min(us.first, t), max(us.last, t)
        us.recent.append(f"{it}|{t}|{a}")
        us.items.add(it)
        us.interest[f"{g}:{d}"] += 1
        us.actions[a] += 1
        ist = items[it]
        ist.n += 1
        ist.first, ist.last = min(ist.first, t), max(ist.last, t)
        ist.days[d] += 1
        pop[(d, it)] += 1
        glob["a:" + a] += 1
        glob[f"d:{d}"] += 1
    glob["n"] = len(ev)
    cap = spec.recent_events
    return Payload(
        users=[
            [
                u,
                s.n,
                str(s.first),
                str(s.last),
                s.recent[-cap:],
                sorted(s.items),
                _flat(s.interest),
                _flat(s.actions),
            ]
            for u, s in users.items()
        ],
        items=[[it, s.n, str(s.first), str(s.last), _flat(s.days)] for it, s in sorted(items.items())],
        popular=[[d, it, c] for (d, it), c in sorted(pop.items())],
        counters=[[k, v] for k, v in sorted(glob.items()) if v],
        events=len(ev),
    )


def _flat(counts: Counter[Any]) -> list[Any]:
    """``{k: v}`` → ``[k1, v1, k2, v2, …]`` in key order (the script's pair lists)."""
    return [x for kv in sorted(counts.items()) for x in kv]
