"""Reading the bus: consumers get validated :class:`Event` objects, never raw bytes.

A record on the events topic that does not decode (written by some other producer) is skipped, counted and,
when the reader is the one responsible for it (``dead_letters=True``: the streaming job), written to the
dead-letter topic with its origin ``topic:partition:offset``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from kafka import KafkaConsumer

from replayrec.bus._kafka import BusConfig, Message, high_watermarks, make_reader, read_range
from replayrec.bus._publish import DeadLetter, EventPublisher
from replayrec.bus._schema import Event, InvalidEventError, decode_event

__all__ = ["ConsumedEvent", "EventReader", "read_dead_letters", "read_events"]


@dataclass(frozen=True)
class ConsumedEvent:
    event: Event
    partition: int
    offset: int
    headers: dict[str, bytes]
    timestamp_ms: int = 0  # the record's timestamp (the producer's send time)


class EventReader:
    """Reads the events topic from given offsets (group-less: ``assign`` + ``seek``)."""

    def __init__(
        self,
        cfg: BusConfig,
        *,
        dead_letters: bool = False,
        publisher: EventPublisher | None = None,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        self.cfg = cfg
        self.rejected: Counter[str] = Counter()
        self._consumer = consumer or make_reader(cfg)
        self._owns_publisher = publisher is None and dead_letters
        self._publisher = (
            publisher if publisher is not None else (EventPublisher(cfg) if dead_letters else None)
        )

    def end_offsets(self, timeout_s: float = 10.0) -> dict[int, int]:
        """Partition → high watermark now (fetch-based; see :mod:`replayrec.bus._kafka`)."""
        return high_watermarks(self._consumer, self.cfg.events_topic, timeout_s)

    def decode(self, msg: Message) -> ConsumedEvent | None:
        try:
            ev = decode_event(msg.value)
        except InvalidEventError as exc:
            self.rejected[exc.reason] += 1
            if self._publisher is not None:
                self._publisher.dead_letter(
                    msg.value or b"", exc, f"{msg.topic}:{msg.partition}:{msg.offset}"
                )
            return None
        return ConsumedEvent(ev, msg.partition, msg.offset, msg.headers, msg.timestamp_ms)

    def read(
        self, start: dict[int, int], end: dict[int, int], timeout_s: float = 60.0
    ) -> list[ConsumedEvent]:
        """The valid events with ``start[p] <= offset < end[p]``, in partition then offset order."""
        out: list[ConsumedEvent] = []
        for batch in read_range(self._consumer, self.cfg.events_topic, start, end, timeout_s):
            for msg in batch:
                ce = self.decode(msg)
                if ce is not None:
                    out.append(ce)
        out.sort(key=lambda c: (c.partition, c.offset))
        return out

    def count(self, start: dict[int, int], end: dict[int, int], timeout_s: float = 60.0) -> int:
        """How many valid events lie in the range (decoded, then dropped: the read-back benchmark)."""
        n = 0
        for batch in read_range(self._consumer, self.cfg.events_topic, start, end, timeout_s):
            for msg in batch:
                if self.decode(msg) is not None:
                    n += 1
        return n

    def close(self) -> None:
        self._consumer.close()
        if self._publisher is not None:
            if self._owns_publisher:
                self._publisher.close()
            else:
                self._publisher.flush()


def read_events(cfg: BusConfig, timeout_s: float = 60.0) -> list[ConsumedEvent]:
    """Every valid event on the events topic now (partition, offset order)."""
    reader = EventReader(cfg)
    try:
        return reader.read({}, reader.end_offsets(), timeout_s)
    finally:
        reader.close()


def read_dead_letters(cfg: BusConfig, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every record on the dead-letter topic now, oldest first."""
    consumer = make_reader(cfg)
    try:
        end = high_watermarks(consumer, cfg.dead_letter_topic, timeout_s)
        out: list[DeadLetter] = []
        for batch in read_range(consumer, cfg.dead_letter_topic, {}, end, timeout_s):
            out.extend(DeadLetter.from_message(m) for m in batch)
        return out
    finally:
        consumer.close()
