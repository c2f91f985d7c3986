"""The columns the stream source hands the sink (an Arrow schema), and turning bus records into them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from replayrec.bus import Event, InvalidEventError, Message, decode_event

__all__ = ["KIND_EVENT", "KIND_MALFORMED", "KIND_RANGE", "SCHEMA", "event_ms", "record_batch", "split_limit"]

KIND_EVENT, KIND_MALFORMED, KIND_RANGE = 0, 1, 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

#: one row per record of the events topic, plus one ``range`` row per topic partition and batch
#: (``offset`` = the batch's start offset, ``range_end`` = its end), so the sink sees every partition's
#: position even when a partition brought nothing
SCHEMA = pa.schema(
    [
        ("kind", pa.int8()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("range_end", pa.int64()),
        ("produced_ms", pa.int64()),
        ("event_id", pa.string()),
        ("user", pa.string()),
        ("item", pa.string()),
        ("action", pa.string()),
        ("rating", pa.float64()),
        ("time_ms", pa.int64()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("message", pa.string()),
        ("raw", pa.binary()),
    ]
)
SPARK_DDL = (
    "kind byte, partition int, offset long, range_end long, produced_ms long, event_id string, user string, "
    "item string, action string, rating double, time_ms long, source string, reason string, message string, "
    "raw binary"
)


def event_ms(event: Event) -> int:
    """An event's time in Unix milliseconds (integer arithmetic: no float rounding)."""
    return (event.event_time - _EPOCH) // _MS


def record_batch(partition: int, start: int, end: int, messages: Iterable[Message]) -> pa.RecordBatch:
    """The rows of one partition's records ``[start, end)``: its range row, then one row per record."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}

    def row(**v: Any) -> None:
        for name, values in cols.items():
            values.append(v.get(name))

    row(kind=KIND_RANGE, partition=partition, offset=start, range_end=end)
    for msg in messages:
        try:
            ev = decode_event(msg.value)
        except InvalidEventError as exc:
            row(kind=KIND_MALFORMED, partition=msg.partition, offset=msg.offset, produced_ms=msg.timestamp_ms,
                reason=exc.reason, message=str(exc), raw=(msg.value or b"")[:65536])  # fmt: skip
            continue
        row(kind=KIND_EVENT, partition=msg.partition, offset=msg.offset, produced_ms=msg.timestamp_ms,
            event_id=ev.event_id, user=ev.user, item=ev.item, action=ev.action, rating=ev.rating,
            time_ms=event_ms(ev), source=ev.source)  # fmt: skip
    return pa.RecordBatch.from_pydict(cols, schema=SCHEMA)


def split_limit(start: dict[int, int], latest: dict[int, int], limit: int) -> dict[int, int]:
    """End offsets reading at most ``limit`` records in all, shared fairly (water-filling) over the partitions
    that have records; deterministic."""
    avail = {p: max(latest[p] - start.get(p, 0), 0) for p in sorted(latest)}
    take = dict.fromkeys(avail, 0)
    left = limit
    open_ = [p for p in avail if avail[p] > 0]
    while left > 0 and open_:
        share = max(left // len(open_), 1)
        for p in list(open_):
            n = min(share, avail[p] - take[p], left)
            take[p] += n
            left -= n
            if take[p] >= avail[p]:
                open_.remove(p)
            if left <= 0:
                break
    return {p: start.get(p, 0) + take[p] for p in avail}
