"""The event bus: the behaviour-event schema, producers (live ingest with dead letters), readers that hand
out validated events, the embedded Kafka-protocol broker, and the replay controller with its shared clock.

Clients are kafka-python; the broker is any Kafka (``REPLAYREC_BOOTSTRAP_SERVERS``) or the embedded Tansu
one (``replayrec bus start``). See ``docs/bus.md``.
"""

from replayrec.bus._broker import (
    BrokerHandle,
    broker_status,
    local_address,
    run_foreground,
    start_broker,
    stop_broker,
    tansu_binary,
)
from replayrec.bus._clock import (
    RedisStateStore,
    ReplayClock,
    ReplayState,
    clock_now,
    format_speed,
    parse_speed,
)
from replayrec.bus._control import ReplayNotRunningError, read_state, send_command
from replayrec.bus._kafka import (
    BusConfig,
    BusUnavailableError,
    Message,
    broker_reachable,
    delete_topics,
    ensure_topics,
    high_watermarks,
    make_producer,
    make_reader,
    partition_of,
    read_range,
    topic_summary,
)
from replayrec.bus._metrics import BusMetrics
from replayrec.bus._publish import DEAD_LETTER_MAX_BYTES, DeadLetter, EventPublisher, IngestResult, Rejection
from replayrec.bus._read import ConsumedEvent, EventReader, read_dead_letters, read_events
from replayrec.bus._replay import COMMANDS, ReplayController, replayed_seqs
from replayrec.bus._schedule import ACTION_OF, Schedule, build_schedule, parse_when
from replayrec.bus._schema import (
    ACTIONS,
    MAX_EVENT_BYTES,
    SCHEMA_VERSION,
    Event,
    InvalidEventError,
    decode_event,
    encode_event,
    encode_fields,
    event_json_schema,
    format_time,
    validate_event,
)

__all__ = [
    "ACTIONS",
    "ACTION_OF",
    "COMMANDS",
    "DEAD_LETTER_MAX_BYTES",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "BrokerHandle",
    "BusConfig",
    "BusMetrics",
    "BusUnavailableError",
    "ConsumedEvent",
    "DeadLetter",
    "Event",
    "EventPublisher",
    "EventReader",
    "IngestResult",
    "InvalidEventError",
    "Message",
    "RedisStateStore",
    "Rejection",
    "ReplayClock",
    "ReplayController",
    "ReplayNotRunningError",
    "ReplayState",
    "Schedule",
    "broker_reachable",
    "broker_status",
    "build_schedule",
    "clock_now",
    "decode_event",
    "delete_topics",
    "encode_event",
    "encode_fields",
    "ensure_topics",
    "event_json_schema",
    "format_speed",
    "format_time",
    "high_watermarks",
    "local_address",
    "make_producer",
    "make_reader",
    "parse_speed",
    "parse_when",
    "partition_of",
    "read_dead_letters",
    "read_events",
    "read_range",
    "read_state",
    "replayed_seqs",
    "run_foreground",
    "send_command",
    "start_broker",
    "stop_broker",
    "tansu_binary",
    "topic_summary",
    "validate_event",
]
