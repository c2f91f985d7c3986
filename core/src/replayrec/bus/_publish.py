"""Producing to the bus: validated events to the events topic, refused ones to the dead-letter topic.

:class:`EventPublisher` is the live-ingest API (the service's ``POST /v1/events`` calls
:meth:`EventPublisher.ingest`) and what the replay controller produces through.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from replayrec.bus._kafka import (
    BusConfig,
    BusUnavailableError,
    Message,
    abandon_producer,
    make_producer,
    partition_of,
)
from replayrec.bus._metrics import BusMetrics
from replayrec.bus._schema import Event, InvalidEventError, decode_event, encode_event

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "DeadLetter",
    "EventPublisher",
    "IngestResult",
    "Rejection",
    "dead_letter_of",
]

log = logging.getLogger("replayrec.bus")

#: the original bytes kept in a dead letter (larger payloads are truncated; size and sha256 say so)
DEAD_LETTER_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Rejection:
    index: int
    reason: str
    message: str


@dataclass
class IngestResult:
    """What :meth:`EventPublisher.ingest` did with each payload, in input order."""

    accepted: list[str] = field(default_factory=list)  # event ids the broker acknowledged
    rejected: list[Rejection] = field(default_factory=list)  # invalid: on the dead-letter topic
    failed: list[str] = field(default_factory=list)  # valid, but the broker did not take them (retry)


@dataclass(frozen=True)
class DeadLetter:
    """A refused event as the dead-letter topic keeps it: the reason and the original bytes (the first
    :data:`DEAD_LETTER_MAX_BYTES` of them; ``size`` and ``sha256`` are the whole payload's)."""

    reason: str
    message: str
    origin: str
    original: bytes
    size: int
    sha256: str
    truncated: bool
    at: float

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("dlq.reason", self.reason.encode()),
            ("dlq.message", self.message.encode()[:2000]),
            ("dlq.origin", self.origin.encode()),
            ("dlq.size", str(self.size).encode()),
            ("dlq.sha256", self.sha256.encode()),
            ("dlq.truncated", b"1" if self.truncated else b"0"),
            ("dlq.at", f"{self.at:.3f}".encode()),
        ]

    @classmethod
    def from_message(cls, msg: Message) -> DeadLetter:
        h = {k: v.decode(errors="replace") for k, v in msg.headers.items()}
        return cls(
            reason=h.get("dlq.reason", "unknown"),
            message=h.get("dlq.message", ""),
            origin=h.get("dlq.origin", ""),
            original=msg.value or b"",
            size=int(h.get("dlq.size", "0") or 0),
            sha256=h.get("dlq.sha256", ""),
            truncated=h.get("dlq.truncated") == "1",
            at=float(h.get("dlq.at", "0") or 0),
        )


def dead_letter_of(original: bytes, rejected: InvalidEventError, origin: str) -> DeadLetter:
    return DeadLetter(
        reason=rejected.reason,
        message=rejected.message,
        origin=origin,
        original=original[:DEAD_LETTER_MAX_BYTES],
        size=len(original),
        sha256=hashlib.sha256(original).hexdigest(),
        truncated=len(original) > DEAD_LETTER_MAX_BYTES,
        at=time.time(),
    )


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", errors="surrogateescape")
    try:
        return json.dumps(payload, default=str).encode()
    except (TypeError, ValueError):
        return repr(payload).encode()


class EventPublisher:
    """Produces events keyed (and partitioned) by user, so one user's events stay in order.

    ``ingest`` takes what a shop sends (bytes, text, parsed JSON or :class:`Event`), validates each, produces
    the good ones and dead-letters the rest; it never raises for a bad event. A JSON object without an
    ``event_id`` gets a random one and without a ``source`` is ``live``.
    """

    def __init__(
        self, cfg: BusConfig, metrics: BusMetrics | None = None, producer: KafkaProducer | None = None
    ):
        self.cfg = cfg
        self.metrics = metrics or BusMetrics()
        self._producer = producer or make_producer(cfg)
        try:
            self._partitions = self._count_partitions()
        except BusUnavailableError:
            if producer is None:
                abandon_producer(self._producer)
            raise

    def _count_partitions(self) -> int:
        try:
            parts = self._producer.partitions_for(self.cfg.events_topic)
        except KafkaError as exc:
            raise BusUnavailableError(f"events topic {self.cfg.events_topic}: {exc}") from None
        if not parts:
            raise BusUnavailableError(
                f"events topic {self.cfg.events_topic} does not exist (run: replayrec bus start)"
            )
        return len(parts)

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def producer(self) -> KafkaProducer:
        return self._producer

    def partition(self, user: str) -> int:
        return partition_of(user, self._partitions)

    def send_encoded(
        self,
        user: str,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> FutureRecordMetadata:
        """Produce already-encoded event bytes (the replay controller's fast path, with the partition it
        computed once per user)."""
        return self._producer.send(
            self.cfg.events_topic,
            value=value,
            key=user.encode(),
            headers=list(headers),
            partition=self.partition(user) if partition is None else partition,
        )

    def publish(self, events: Iterable[Event]) -> list[FutureRecordMetadata]:
        futures = []
        n = 0
        for ev in events:
            futures.append(self.send_encoded(ev.user, encode_event(ev), [("schema", b"1")]))
            n += 1
        if n:
            self.metrics.record_produced(n, "live")
        return futures

    def ingest(
        self,
        payloads: Iterable[Any],
        origin: str = "ingest",
        flush: bool = True,
        flush_timeout_s: float = 30.0,
    ) -> IngestResult:
        """Validate and produce each payload; refused ones go to the dead-letter topic with their reason.
        With ``flush``, wait up to ``flush_timeout_s`` for the broker's acknowledgements: what it did not
        acknowledge by then is ``failed``."""
        result = IngestResult()
        good: list[Event] = []
        for i, payload in enumerate(payloads):
            try:
                if isinstance(payload, Event):
                    ev = payload
                else:  # the size limit applies to parsed JSON too: it is measured on the bytes
                    ev = decode_event(_as_bytes(payload), {"event_id": str(uuid.uuid4()), "source": "live"})
                if ev.source != "live":
                    raise InvalidEventError("invalid", "source: live ingest takes source 'live' only")
            except InvalidEventError as exc:
                self.dead_letter(_as_bytes(payload), exc, origin)
                result.rejected.append(Rejection(i, exc.reason, exc.message))
                continue
            good.append(ev)
        futures = self.publish(good)
        if flush:
            with contextlib.suppress(KafkaError):  # per-event failures are read from the futures
                self._producer.flush(timeout=flush_timeout_s)
            for ev, fut in zip(good, futures, strict=True):
                (result.accepted if fut.succeeded() else result.failed).append(ev.event_id)
        else:
            result.accepted = [ev.event_id for ev in good]
        return result

    def dead_letter(self, original: bytes, rejected: InvalidEventError, origin: str) -> DeadLetter:
        dl = dead_letter_of(original, rejected, origin)
        self._producer.send(self.cfg.dead_letter_topic, value=dl.original, headers=dl.headers(), partition=0)
        self.metrics.dead_letters.labels(dl.reason).inc()
        log.warning("dead letter (%s, %s): %s", origin, dl.reason, dl.message)
        return dl

    def flush(self, timeout_s: float | None = 30.0) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise BusUnavailableError(
                f"broker at {self.cfg.bootstrap_servers} did not take the events: {exc}"
            ) from None

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is pending (up to ``timeout_s``), then close; undelivered events are dropped."""
        with contextlib.suppress(KafkaError):
            self._producer.flush(timeout=timeout_s)
        abandon_producer(self._producer)
