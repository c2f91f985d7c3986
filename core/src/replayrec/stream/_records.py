"""The columns the stream source hands the sink (an Arrow schema), and turning bus records into them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from replayrec.bus import Event, InvalidEventError, Message, decode_event

__all__ = [
    "KIND_EVENT",
    "KIND_MALFORMED",
    "KIND_RANGE",
    "SCHEMA",
    "SPARK_DDL",
    "event_ms",
    "pack",
    "record_batch",
    "split_limit",
    "unpack",
]

KIND_EVENT, KIND_MALFORMED, KIND_RANGE = 0, 1, 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

#: one row per record of the events topic, plus one ``range`` row per topic partition and batch
#: (``offset`` = the batch's start offset, ``range_end`` = its end), so the sink sees every partition's
#: position even when a partition brought nothing; ``raw`` is the record's bytes, whole (what a dead letter
#: keeps)
SCHEMA = pa.schema(
    [
        ("kind", pa.int8()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("range_end", pa.int64()),
        ("produced_ms", pa.int64()),
        ("user", pa.string()),
        ("item", pa.string()),
        ("action", pa.string()),
        ("time_ms", pa.int64()),
        ("reason", pa.string()),
        ("message", pa.string()),
        ("raw", pa.binary()),
    ]
)
#: what Spark carries: one row per topic partition and batch, its records packed as one Arrow IPC stream
#: (Spark moving 8 binary rows instead of 10,000 wide ones makes a drain ≈ 3× faster; the sink unpacks them)
SPARK_SCHEMA = pa.schema([("partition", pa.int32()), ("records", pa.binary())])
SPARK_DDL = "partition int, records binary"


def event_ms(event: Event) -> int:
    """An event's time in Unix milliseconds (integer arithmetic: no float rounding)."""
    return (event.event_time - _EPOCH) // _MS


def record_batch(ranges: list[tuple[int, int, int]], messages: Iterable[Message]) -> pa.RecordBatch:
    """The :data:`SCHEMA` rows (what the sink works on) of the records of ``ranges`` — ``(partition, start,
    end)`` each: a range row per partition, then one row per record."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}

    def row(**v: Any) -> None:
        for name, values in cols.items():
            values.append(v.get(name))

    for partition, start, end in ranges:
        row(kind=KIND_RANGE, partition=partition, offset=start, range_end=end)
    for msg in messages:
        try:
            ev = decode_event(msg.value)
        except InvalidEventError as exc:
            row(kind=KIND_MALFORMED, partition=msg.partition, offset=msg.offset, produced_ms=msg.timestamp_ms,
                reason=exc.reason, message=str(exc), raw=msg.value or b"")  # fmt: skip
            continue
        row(kind=KIND_EVENT, partition=msg.partition, offset=msg.offset, produced_ms=msg.timestamp_ms,
            user=ev.user, item=ev.item, action=ev.action, time_ms=event_ms(ev), raw=msg.value)  # fmt: skip
    return pa.RecordBatch.from_pydict(cols, schema=SCHEMA)


def pack(batch: pa.RecordBatch) -> pa.RecordBatch:
    """One :data:`SPARK_SCHEMA` row holding ``batch`` as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_batch(batch)
    partition = int(batch.column(1)[0].as_py()) if batch.num_rows else -1  # its first partition
    return pa.RecordBatch.from_pydict(
        {"partition": [partition], "records": [sink.getvalue().to_pybytes()]}, schema=SPARK_SCHEMA
    )


def unpack(table: pa.Table) -> pa.Table:
    """The :data:`SCHEMA` table of a micro-batch from its packed rows (in partition order)."""
    blobs = table.column("records").to_pylist()
    parts = [pa.ipc.open_stream(b).read_all() for b in blobs if b]
    return pa.concat_tables(parts) if parts else SCHEMA.empty_table()


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
