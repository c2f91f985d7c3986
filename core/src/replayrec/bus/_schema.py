"""The behaviour event (schema version 1) and its validation: bytes in, an :class:`Event` or a reason out.

An event names the shop's raw ids (never the dense ids of a prepared dataset), so a shop can send what its
pages know. Encoding is canonical JSON (UTF-8, keys in schema order, UTC times with a ``Z``), so the same
event always has the same bytes.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from replayrec.errors import ReplayrecError, describe_validation_error

__all__ = [
    "ACTIONS",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "Action",
    "Event",
    "InvalidEventError",
    "Source",
    "decode_event",
    "encode_event",
    "encode_fields",
    "event_json_schema",
    "format_time",
    "validate_event",
]

SCHEMA_VERSION = 1
#: an event is a few hundred bytes; anything over this is refused before parsing
MAX_EVENT_BYTES = 16 * 1024
ACTIONS = ("view", "click", "add_to_cart", "purchase", "rate", "review")
Action = Literal["view", "click", "add_to_cart", "purchase", "rate", "review"]
Source = Literal["replay", "live"]


class InvalidEventError(ReplayrecError):
    """An event failed validation. ``reason`` is a short machine-readable class (``not_json``,
    ``invalid``, ``too_large``, ``not_utf8``, ``unsupported_version``); the message says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[InvalidEventError], tuple[str, str]]:
        return type(self), (self.reason, self.message)


class Event(BaseModel):
    """One behaviour event.

    Attributes:
        schema_version: always 1 for this model; a consumer refuses versions it does not know.
        event_id: unique and deterministic for replayed events (``<dataset>:<seq>``), so a re-sent event is
            recognisable; live events carry the shop's id or one assigned at ingest.
        user, item: the shop's raw ids.
        action: what the user did.
        rating: stars in [0, 5] when the action carries one.
        event_time: when it happened (timezone-aware; stored and sent as UTC).
        source: ``replay`` (the replay controller) or ``live`` (the shop).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    schema_version: Literal[1] = Field(default=1, description="event schema version (this is 1)")
    event_id: str = Field(
        min_length=1, max_length=128, description="unique id; replayed events: <dataset>:<seq>"
    )
    user: str = Field(min_length=1, max_length=256, description="the shop's user id")
    item: str = Field(min_length=1, max_length=256, description="the shop's item id")
    action: Action = Field(description="what the user did")
    rating: float | None = Field(default=None, ge=0.0, le=5.0, description="stars, when the action has one")
    event_time: datetime = Field(description="when it happened: ISO 8601 with a timezone (sent as UTC)")
    source: Source = Field(description="replay (the replay controller) or live (the shop)")

    @field_validator("event_time")
    @classmethod
    def _aware_utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("event_time needs a timezone (e.g. 2014-03-01T12:00:00Z)")
        return v.astimezone(UTC)

    @field_validator("rating")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("rating must be a finite number")
        return v

    @property
    def timestamp(self) -> float:
        """Event time as Unix seconds."""
        return self.event_time.timestamp()


def format_time(ts: float) -> str:
    """Unix seconds as the schema's time text: ISO 8601 UTC, millisecond precision, ``Z`` suffix."""
    ms = round(ts * 1000)
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def encode_event(event: Event) -> bytes:
    """Canonical bytes of ``event`` (what the bus carries)."""
    return encode_fields(
        event.event_id,
        event.user,
        event.item,
        event.action,
        event.rating,
        event.event_time.timestamp(),
        event.source,
    )


def encode_fields(
    event_id: str, user: str, item: str, action: str, rating: float | None, ts: float, source: str
) -> bytes:
    """The canonical encoding without building a model (the replay controller's fast path; a test keeps it
    equal to :func:`encode_event`)."""
    r = "null" if rating is None else repr(float(rating))
    return (
        f'{{"schema_version":1,"event_id":{json.dumps(event_id)},"user":{json.dumps(user)},'
        f'"item":{json.dumps(item)},"action":"{action}","rating":{r},'
        f'"event_time":"{format_time(ts)}","source":"{source}"}}'
    ).encode()


def validate_event(obj: Any) -> Event:
    """An :class:`Event` from a parsed JSON object (or an Event); :class:`InvalidEventError` otherwise."""
    if isinstance(obj, Event):
        return obj
    if not isinstance(obj, dict):
        raise InvalidEventError("invalid", f"an event is a JSON object, got {type(obj).__name__}")
    return decode_event(json.dumps(obj).encode())


def decode_event(
    data: bytes | bytearray | memoryview | None, defaults: dict[str, Any] | None = None
) -> Event:
    """Parse and validate the bytes of one event; :class:`InvalidEventError` naming the problem otherwise.
    ``defaults`` fill keys a JSON object lacks (live ingest: a fresh ``event_id``, ``source: live``)."""
    if data is None:
        raise InvalidEventError("invalid", "empty message (no value)")
    raw = bytes(data)
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError("too_large", f"{len(raw):,} bytes (at most {MAX_EVENT_BYTES:,})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError("not_utf8", f"byte {exc.start} is not UTF-8") from None
    if defaults:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidEventError(
                "not_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if isinstance(obj, dict) and any(k not in obj for k in defaults):
            raw = json.dumps({**defaults, **obj}).encode()
    try:
        # JSON mode: ISO 8601 text is a datetime, everything else strictly typed
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc, raw) from None


def _rejection(exc: ValidationError, raw: bytes) -> InvalidEventError:
    errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        return InvalidEventError("not_json", str(errors[0].get("ctx", {}).get("error", errors[0]["msg"])))
    if errors and errors[0]["type"] == "model_type":
        return InvalidEventError("invalid", "an event is a JSON object")
    if any(e["loc"] == ("schema_version",) and e["type"] == "literal_error" for e in errors):
        version = json.loads(raw).get("schema_version")
        return InvalidEventError("unsupported_version", f"schema_version {version!r} (this reader knows 1)")
    return InvalidEventError("invalid", describe_validation_error(exc))


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the event (written to ``docs/event-schema.json``; a test keeps them equal)."""
    schema = Event.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://replayrec.dev/schemas/event-v1.json"
    schema["description"] = (
        "A replayrec behaviour event, schema version 1. Raw shop ids; UTC event time; at most "
        f"{MAX_EVENT_BYTES} bytes of UTF-8 JSON; unknown keys are refused."
    )
    return schema
