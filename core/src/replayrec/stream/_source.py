"""A Spark Structured Streaming source for the events topic, written with PySpark 4's Python Data Source API
(Spark's JVM Kafka connector is not installable here).

Offsets are ``{"<partition>": next_offset}``, so Spark's checkpoint is the source of truth for what a batch
read. ``latestOffset`` takes the bus's fetch high watermarks (kafka-python; one consumer per planner process,
made when first needed: the reader object itself is pickled) and honours a row limit
(``maxRecordsPerTrigger``), spread over the partitions. Each micro-batch becomes a few input partitions
(``tasks``), each reading its share of the topic's partitions with librdkafka (:mod:`._fetch`) and handing
Spark one row: the decoded records as an Arrow IPC stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from kafka import KafkaConsumer

# this module is only imported by the job (replayrec.stream._job.run_job), never at package import
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows
from pyspark.sql.types import StructType

from replayrec.bus import BusConfig, high_watermarks, make_reader
from replayrec.errors import ReplayrecError
from replayrec.stream._fetch import fetch_range
from replayrec.stream._records import SPARK_DDL, pack, record_batch, split_limit

__all__ = ["BusSource", "TopicResetError"]

_CONSUMERS: dict[tuple[str, str], KafkaConsumer] = {}


class TopicResetError(ReplayrecError):
    """The events topic holds fewer records than the checkpoint says were read (the broker lost its log)."""


def _consumer(cfg: BusConfig) -> KafkaConsumer:
    key = (cfg.bootstrap_servers, cfg.namespace)
    if key not in _CONSUMERS:
        _CONSUMERS[key] = make_reader(cfg, client_id="replayrec-stream")
    return _CONSUMERS[key]


@dataclass(frozen=True)
class _Slice(InputPartition):
    ranges: tuple[tuple[int, int, int], ...]  # (partition, start, end)


class _Reader(DataSourceStreamReader):
    def __init__(self, options: dict[str, str]) -> None:
        options = {k.lower(): v for k, v in options.items()}  # Spark hands option names case-insensitively
        self.cfg = BusConfig(
            bootstrap_servers=options["bootstrap"],
            namespace=options["namespace"],
            event_partitions=int(options["partitions"]),
        )
        self.max_rows = int(options.get("maxrecordspertrigger", "10000"))
        self.tasks = max(int(options.get("tasks", "2")), 1)

    def initialOffset(self) -> dict[str, int]:  # noqa: N802 - the API's names
        return {str(p): 0 for p in range(self.cfg.event_partitions)}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadMaxRows(self.max_rows) if self.max_rows > 0 else ReadAllAvailable()

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        begin = {int(p): int(o) for p, o in start.items()}
        latest = high_watermarks(_consumer(self.cfg), self.cfg.events_topic)
        behind = {p: (begin[p], latest.get(p, 0)) for p in begin if latest.get(p, 0) < begin[p]}
        if behind:
            raise TopicResetError(
                f"{self.cfg.events_topic}: the checkpoint has read further than the topic holds "
                f"(partition: (checkpoint, topic end) {behind}); the broker lost its log: "
                "run `replayrec stream reset` and replay again"
            )
        latest = {p: latest.get(p, 0) for p in begin}
        if isinstance(limit, ReadMaxRows):
            latest = split_limit(begin, latest, int(limit.max_rows))
        return {str(p): latest[p] for p in sorted(latest)}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        ranges = [
            (int(p), int(start.get(p, 0)), int(e)) for p, e in sorted(end.items(), key=lambda x: int(x[0]))
        ]
        if all(s >= e for _, s, e in ranges):
            return []
        groups = [tuple(ranges[i :: self.tasks]) for i in range(self.tasks)]
        return [_Slice(g) for g in groups if g]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        if not isinstance(partition, _Slice):
            raise TypeError(f"unexpected input partition {partition!r}")
        # one fetch loop over all of the slice's partitions, with a librdkafka consumer of its own per read
        messages = fetch_range(self.cfg, list(partition.ranges))
        yield pack(record_batch(list(partition.ranges), messages))

    def commit(self, end: dict[str, int]) -> None:
        return None


class BusSource(DataSource):
    """``spark.readStream.format("replayrec_bus")`` with options ``bootstrap``, ``namespace``, ``partitions``,
    ``maxRecordsPerTrigger`` and ``tasks``."""

    @classmethod
    def name(cls) -> str:
        return "replayrec_bus"

    def schema(self) -> str:
        return SPARK_DDL

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:  # noqa: N802
        return _Reader(dict(self.options))
