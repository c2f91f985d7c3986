"""A dataset's history as a replay schedule: every event with its raw ids, its time on the continuous
replay clock, its deterministic id and its partition, in the dataset's global order."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cached_property

import numpy as np
import numpy.typing as npt

from replayrec.bus._kafka import partition_of
from replayrec.bus._schema import encode_fields
from replayrec.data import ACTION_OF, Dataset, replay_times, to_ms
from replayrec.errors import ConfigError, DataError

__all__ = ["ACTION_OF", "Schedule", "build_schedule", "parse_when"]


def parse_when(text: str | None) -> float | None:
    """``YYYY-MM-DD`` (UTC midnight), an ISO 8601 time, or Unix seconds → Unix seconds."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ConfigError(f"time {text!r}: not a finite number of seconds")
        return value
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"time {text!r}: expected YYYY-MM-DD, an ISO 8601 time or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True, eq=False)
class Schedule:
    """The events of a replay range, oldest first. Parallel sequences, one entry per event."""

    dataset: str
    seq: npt.NDArray[np.int64]  # position in the dataset's global order (the id's number)
    times: npt.NDArray[np.float64]  # replay-clock seconds, non-decreasing
    users: list[str]
    items: list[str]
    actions: list[str]
    ratings: list[float | None]
    partitions: npt.NDArray[np.int64]
    range_from: float | None = None
    range_until: float | None = None

    def __len__(self) -> int:
        return int(self.seq.size)

    def head(self, n: int) -> Schedule:
        """The first ``n`` events."""
        return replace(
            self, seq=self.seq[:n], times=self.times[:n], users=self.users[:n], items=self.items[:n],
            actions=self.actions[:n], ratings=self.ratings[:n], partitions=self.partitions[:n],
        )  # fmt: skip

    def event_id(self, i: int) -> str:
        return f"{self.dataset}:{int(self.seq[i])}"

    @cached_property
    def _quoted(self) -> tuple[list[str], list[str]]:
        """Users and items as JSON string literals (escaped once per distinct id)."""
        qu = {u: json.dumps(u) for u in set(self.users)}
        qi = {i: json.dumps(i) for i in set(self.items)}
        return [qu[u] for u in self.users], [qi[i] for i in self.items]

    def encode_many(self, idx: Sequence[int]) -> list[bytes]:
        """Canonical bytes of the events ``idx``: the bytes of :meth:`encode`, built in bulk (times formatted
        by numpy, ids escaped once) — the replay controller's hot loop."""
        if not len(idx):
            return []
        sel = np.asarray(idx, dtype=np.int64)
        ms = to_ms(self.times[sel]).astype("datetime64[ms]")
        stamps = np.datetime_as_string(ms, unit="ms").tolist()
        users, items = self._quoted
        prefix = json.dumps(f"{self.dataset}:")[:-1]
        acts, rates = self.actions, self.ratings
        out = []
        for i, seq, t in zip(sel.tolist(), self.seq[sel].tolist(), stamps, strict=True):
            r = rates[i]
            out.append(
                f'{{"schema_version":1,"event_id":{prefix}{seq}","user":{users[i]},"item":{items[i]},'
                f'"action":"{acts[i]}","rating":{"null" if r is None else repr(r)},'
                f'"event_time":"{t}Z","source":"replay"}}'.encode()
            )
        return out

    def encode(self, i: int) -> bytes:
        """Canonical bytes of event ``i`` (equal to ``encode_event`` of the same :class:`Event`)."""
        return encode_fields(
            self.event_id(i),
            self.users[i],
            self.items[i],
            self.actions[i],
            self.ratings[i],
            float(self.times[i]),
            "replay",
        )


def build_schedule(
    dataset: Dataset, partitions: int, start: float | None = None, until: float | None = None
) -> Schedule:
    """The events of ``dataset`` with replay time in ``[start, until)`` (both optional)."""
    ev = dataset.events
    if len(ev) and int(ev["timestamp"].max()) == 0:
        raise DataError(f"dataset {dataset.name} has no event times: it cannot be replayed in time order")
    order, times = replay_times(ev)
    seq = ev["seq"].to_numpy(np.int64)[order]
    keep = np.ones(seq.size, dtype=bool)
    if start is not None:
        keep &= times >= start
    if until is not None:
        keep &= times < until
    if start is not None and until is not None and until <= start:
        raise ConfigError("--until must be later than --from")
    idx = order[keep]
    user_raw = dataset.users["raw_id"].astype(str).to_numpy()
    item_raw = dataset.items["raw_id"].astype(str).to_numpy()
    users = user_raw[ev["user"].to_numpy()[idx]].tolist()
    actions_src = ev["action"].astype(str).to_numpy()[idx]
    unknown = sorted(set(np.unique(actions_src).tolist()) - set(ACTION_OF))
    if unknown:
        raise DataError(f"dataset {dataset.name}: actions {unknown} have no event-schema action")
    ratings = ev["rating"].to_numpy(np.float64)[idx]
    per_user = {u: partition_of(u, partitions) for u in set(users)}
    return Schedule(
        dataset=dataset.name,
        seq=seq[keep],
        times=times[keep],
        users=users,
        items=item_raw[ev["item"].to_numpy()[idx]].tolist(),
        actions=[ACTION_OF[a] for a in actions_src.tolist()],
        ratings=[None if math.isnan(r) else float(r) for r in ratings.tolist()],
        partitions=np.fromiter((per_user[u] for u in users), dtype=np.int64, count=len(users)),
        range_from=start,
        range_until=until,
    )
