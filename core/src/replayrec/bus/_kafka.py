"""Kafka clients (kafka-python) configured once: topics, producers, readers, high watermarks.

Works with the embedded Tansu broker and with any real Kafka cluster. Two broker quirks shape this module
(``../shared/ENVIRONMENT.md``): ``ListOffsets(LATEST)`` can under-report, so the end of a partition is the
*fetch high watermark*; and a consumer-group join waits for a rebalance, so readers ``assign`` partitions and
seek instead of joining a group.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError

__all__ = [
    "BusConfig",
    "BusUnavailableError",
    "Message",
    "abandon_producer",
    "broker_reachable",
    "delete_topics",
    "ensure_topics",
    "high_watermarks",
    "make_producer",
    "make_reader",
    "partition_of",
    "read_range",
    "topic_id",
    "topic_summary",
]

log = logging.getLogger("replayrec.bus")


class BusUnavailableError(ReplayrecError):
    """The Kafka broker cannot be reached (or did not answer in time)."""


@dataclass(frozen=True)
class BusConfig:
    """Where the bus is and what its topics are called."""

    bootstrap_servers: str
    namespace: str = "replayrec"
    event_partitions: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> BusConfig:
        return cls(settings.bootstrap_servers, settings.bus_namespace, settings.event_partitions)

    @property
    def events_topic(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.namespace}.events.dlq"

    @property
    def control_topic(self) -> str:
        return f"{self.namespace}.replay.control"

    def topics(self) -> dict[str, int]:
        """Topic name → partitions: events are keyed (and partitioned) by user, so one user's events stay in
        order; dead letters and replay control are single-partition logs."""
        return {self.events_topic: self.event_partitions, self.dead_letter_topic: 1, self.control_topic: 1}

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]


@dataclass(frozen=True)
class Message:
    """One record read from a topic (still bytes: :mod:`replayrec.bus` decodes it for consumers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), so any Kafka client agrees with us."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def broker_reachable(cfg: BusConfig, timeout: float = 1.0) -> bool:
    """A TCP connection to the first bootstrap server succeeds (cheap; no Kafka handshake)."""
    for server in cfg.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def _require_broker(cfg: BusConfig) -> None:
    """Fail at once when nothing listens (a kafka-python client would spend its bootstrap timeout)."""
    if not broker_reachable(cfg):
        raise BusUnavailableError(
            f"no Kafka broker at {cfg.bootstrap_servers} (start one: replayrec bus start --detach)"
        )


def _admin(cfg: BusConfig, timeout_s: float) -> KafkaAdminClient:
    _require_broker(cfg)
    try:
        return KafkaAdminClient(
            bootstrap_servers=cfg.servers,
            client_id="replayrec-admin",
            request_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise BusUnavailableError(f"no Kafka broker at {cfg.bootstrap_servers} ({exc})") from None


def ensure_topics(cfg: BusConfig, timeout_s: float = 10.0) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    admin = _admin(cfg, timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = cfg.topics()
        if cfg.events_topic in existing:
            described = admin.describe_topics([cfg.events_topic])
            have = len(described[0]["partitions"]) if described else cfg.event_partitions
            if have != cfg.event_partitions:
                raise ConfigError(
                    f"topic {cfg.events_topic} has {have} partitions, the settings say "
                    f"{cfg.event_partitions}: "
                    f"set REPLAYREC_EVENT_PARTITIONS={have} (users are partitioned by that count)"
                )
        missing = [NewTopic(n, p, 1) for n, p in wanted.items() if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently by another process
                admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
        return [t.name for t in missing]
    except KafkaError as exc:
        raise BusUnavailableError(f"could not create topics on {cfg.bootstrap_servers}: {exc}") from None
    finally:
        admin.close()


def topic_id(cfg: BusConfig, topic: str, timeout_s: float = 5.0) -> str | None:
    """The broker's id of ``topic`` (new each time the topic is created); ``None`` when it does not exist."""
    admin = _admin(cfg, timeout_s)
    try:
        described = admin.describe_topics([topic])
    except KafkaError:
        return None
    finally:
        admin.close()
    if not described or described[0].get("error_code"):
        return None
    tid = described[0].get("topic_id")
    return str(tid) if tid else None


def delete_topics(cfg: BusConfig, timeout_s: float = 10.0) -> list[str]:
    """Delete the project's topics of ``cfg``'s namespace that exist (the benchmark's clean-up)."""
    admin = _admin(cfg, timeout_s)
    try:
        present = [n for n in cfg.topics() if n in set(admin.list_topics())]
        if present:
            admin.delete_topics(present, timeout_ms=int(timeout_s * 1000))
        return present
    except KafkaError as exc:
        raise BusUnavailableError(f"could not delete topics on {cfg.bootstrap_servers}: {exc}") from None
    finally:
        admin.close()


def make_producer(cfg: BusConfig, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all, retries unbounded): a batch retried after a broker hiccup is
    neither duplicated nor reordered within its partition."""
    conf: dict[str, Any] = {
        "bootstrap_servers": cfg.servers,
        "client_id": "replayrec-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 512 * 1024,
        "max_request_size": 2 * 1024 * 1024,
        "max_in_flight_requests_per_connection": 1,
        "retry_backoff_ms": 200,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 5000,
        "delivery_timeout_ms": 600_000,
        "request_timeout_ms": 10_000,
        "max_block_ms": 10_000,
        "allow_auto_create_topics": False,
    }
    conf.update(overrides)
    producer: KafkaProducer = _connect(KafkaProducer, cfg, conf)
    return producer


def abandon_producer(producer: KafkaProducer, timeout_s: float = 5.0) -> None:
    """Close ``producer`` now, dropping what it still holds. kafka-python's ``close()`` flushes first and
    raises when that times out, leaving the producer retrying in the background (whose late deliveries would
    duplicate what is re-sent): force its I/O thread to stop (aborting the pending batches), then close."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(timeout_s)
    with contextlib.suppress(KafkaError):
        producer.close(timeout=0)


def make_reader(cfg: BusConfig, **overrides: Any) -> KafkaConsumer:
    """A group-less consumer (``assign`` + ``seek``): no rebalance wait, nothing committed."""
    conf: dict[str, Any] = {
        "bootstrap_servers": cfg.servers,
        "client_id": "replayrec-reader",
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
        "fetch_max_wait_ms": 100,
        "request_timeout_ms": 10_000,
        "allow_auto_create_topics": False,
    }
    conf.update(overrides)
    consumer: KafkaConsumer = _connect(KafkaConsumer, cfg, conf)
    return consumer


def _connect(client: Any, cfg: BusConfig, conf: dict[str, Any]) -> Any:
    """A kafka-python client, or :class:`BusUnavailableError` at once when nothing listens."""
    _require_broker(cfg)
    try:
        return client(**conf)
    except KafkaError as exc:
        raise BusUnavailableError(f"no Kafka broker at {cfg.bootstrap_servers} ({exc})") from None


def _partitions(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[TopicPartition]:
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if time.monotonic() > deadline:
            raise BusUnavailableError(
                f"topic {topic!r} does not exist (run: replayrec bus start, or bus topics)"
            )
        time.sleep(0.1)


def _fresh_assign(consumer: KafkaConsumer, tps: list[TopicPartition]) -> None:
    """Assign ``tps`` with fresh partition state: kafka-python keeps a partition's paused flag and last high
    watermark across ``assign`` calls that keep it, so a reused consumer first drops everything."""
    consumer.unsubscribe()
    consumer.assign(tps)


def high_watermarks(consumer: KafkaConsumer, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Partition → high watermark (the next offset to be written), from a fetch response: the broker's
    ListOffsets answer can be too low, so the consumer fetches from there and reads the watermark the fetch
    reports. Leaves the consumer assigned to the topic at the high watermarks."""
    tps = _partitions(consumer, topic, timeout_s)
    _fresh_assign(consumer, tps)
    consumer.seek_to_end(*tps)
    deadline = time.monotonic() + timeout_s
    marks: dict[int, int] = {}
    while len(marks) < len(tps):
        consumer.poll(timeout_ms=100, max_records=1)
        for tp in tps:
            hw = consumer.highwater(tp)
            if hw is not None:
                marks[tp.partition] = int(hw)
        if time.monotonic() > deadline:
            raise BusUnavailableError(f"no high watermark for {topic} within {timeout_s:.0f} s")
    for tp in tps:
        consumer.seek(tp, marks[tp.partition])
    return marks


def read_range(
    consumer: KafkaConsumer,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    timeout_s: float = 60.0,
    max_records: int = 10_000,
) -> Iterator[list[Message]]:
    """Records of ``topic`` with ``start[p] <= offset < end[p]`` per partition, in batches (each batch in
    partition order). Stops when every partition reached its end; :class:`BusUnavailableError` after
    ``timeout_s`` without progress."""
    todo = {p: (start.get(p, 0), e) for p, e in end.items() if e > start.get(p, 0)}
    if not todo:
        return
    tps = {p: TopicPartition(topic, p) for p in todo}
    _fresh_assign(consumer, list(tps.values()))
    for p, (s, _) in todo.items():
        consumer.seek(tps[p], s)
    last_progress = time.monotonic()
    while todo:
        polled = consumer.poll(timeout_ms=200, max_records=max_records)
        if polled:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout_s:
            raise BusUnavailableError(f"reading {topic}: no progress for {timeout_s:.0f} s (left: {todo})")
        batch: list[Message] = []
        for tp, records in sorted(polled.items(), key=lambda kv: kv[0].partition):
            if tp.partition not in todo:
                continue
            stop = todo[tp.partition][1]
            for r in records:
                if r.offset >= stop:
                    break
                batch.append(
                    Message(
                        tp.topic,
                        tp.partition,
                        r.offset,
                        r.key,
                        r.value,
                        dict(r.headers or []),
                        r.timestamp,
                    )
                )
        for p in list(todo):  # also partitions whose last offsets are markers, not records
            if consumer.position(tps[p]) >= todo[p][1]:
                del todo[p]
                consumer.pause(tps[p])
        if batch:
            yield batch


def topic_summary(cfg: BusConfig, timeout_s: float = 5.0) -> dict[str, dict[str, Any]]:
    """Each project topic that exists: partitions and messages (sum of the high watermarks)."""
    consumer = make_reader(cfg, request_timeout_ms=int(timeout_s * 1000) + 1000)
    try:
        existing = consumer.topics()
        out: dict[str, dict[str, Any]] = {}
        for name in cfg.topics():
            if name not in existing:
                continue
            marks = high_watermarks(consumer, name, timeout_s)
            out[name] = {"partitions": len(marks), "messages": sum(marks.values())}
        return out
    except KafkaError as exc:
        raise BusUnavailableError(f"broker at {cfg.bootstrap_servers}: {exc}") from None
    finally:
        consumer.close()
