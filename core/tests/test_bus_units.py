"""The bus without a broker: event schema and validation, the replay clock, schedules, time spreading."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from replayrec.bus import (
    MAX_EVENT_BYTES,
    Event,
    InvalidEventError,
    ReplayClock,
    ReplayState,
    build_schedule,
    clock_now,
    decode_event,
    encode_event,
    encode_fields,
    event_json_schema,
    format_time,
    parse_speed,
    parse_when,
    partition_of,
    validate_event,
)
from replayrec.bus._publish import DEAD_LETTER_MAX_BYTES, dead_letter_of
from replayrec.data import DAY, spread_within_days
from replayrec.errors import ConfigError, DataError, ReplayrecError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _event(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e1", "user": "u1", "item": "i1", "action": "purchase", "rating": None,
        "event_time": "2014-03-01T12:00:00Z", "source": "live",
    }  # fmt: skip
    base.update(kw)
    return base


def test_round_trip_is_canonical() -> None:
    ev = validate_event(_event(rating=4.5))
    raw = encode_event(ev)
    assert decode_event(raw) == ev
    assert encode_event(decode_event(raw)) == raw  # same event, same bytes
    assert json.loads(raw)["event_time"] == "2014-03-01T12:00:00.000Z"


def test_fast_encoding_equals_the_model() -> None:
    ts = 1_400_000_000.1234
    ev = Event(
        event_id='d:1', user='u"1', item="i\\1", action="rate", rating=3.0,
        event_time=datetime.fromtimestamp(round(ts, 3), tz=UTC), source="replay",
    )  # fmt: skip
    assert encode_fields("d:1", 'u"1', "i\\1", "rate", 3.0, ts, "replay") == encode_event(ev)
    assert encode_fields("d:2", "ü", "i", "view", None, ts, "replay").decode().count("null") == 1


def test_times_are_utc() -> None:
    ev = validate_event(_event(event_time="2014-03-01T14:00:00+02:00"))
    assert ev.event_time == datetime(2014, 3, 1, 12, tzinfo=UTC)
    assert ev.event_time.utcoffset() == timedelta(0)
    assert format_time(1.2346) == "1970-01-01T00:00:01.235Z"
    aware = Event.model_validate(
        {**_event(), "event_time": datetime(2014, 1, 1, tzinfo=timezone(timedelta(hours=-5)))}
    )
    assert aware.event_time.hour == 5


@pytest.mark.parametrize(
    ("payload", "reason", "needle"),
    [
        ({k: v for k, v in _event().items() if k != "user"}, "invalid", "user: Field required"),
        (_event(user=123), "invalid", "user: Input should be a valid string"),
        (_event(rating="5"), "invalid", "rating"),
        (_event(rating=7.0), "invalid", "rating: Input should be less than or equal to 5"),
        (_event(action="like"), "invalid", "action: Input should be"),
        (_event(event_time="2014-03-01T12:00:00"), "invalid", "needs a timezone"),
        (_event(event_time="yesterday"), "invalid", "event_time"),
        (_event(source="batch"), "invalid", "source"),
        (_event(colour="red"), "invalid", "colour: unknown key"),
        (_event(schema_version=2), "unsupported_version", "schema_version 2"),
        (_event(event_id=""), "invalid", "event_id"),
    ],
)
def test_bad_events_name_the_problem(payload: dict[str, object], reason: str, needle: str) -> None:
    with pytest.raises(InvalidEventError) as err:
        decode_event(json.dumps(payload).encode())
    assert err.value.reason == reason
    assert needle in err.value.message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"user": "u1",', "not_json"),
        (b"[1, 2]", "invalid"),
        (b"", "not_json"),
        (None, "invalid"),
        (json.dumps(_event(item="x" * (1024 * 1024))).encode(), "too_large"),
    ],
)
def test_bad_bytes_name_the_problem(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEventError) as err:
        decode_event(raw)
    assert err.value.reason == reason


def test_size_limit_is_exact() -> None:
    ev = encode_event(validate_event(_event()))
    pad = MAX_EVENT_BYTES - len(ev)
    fits = json.dumps(_event(item="i" * 200, event_id="e" * 100)).encode()
    assert len(fits) <= MAX_EVENT_BYTES
    decode_event(fits)
    too_big = fits + b" " * (MAX_EVENT_BYTES - len(fits) + 1)
    with pytest.raises(InvalidEventError, match="too_large"):
        decode_event(too_big)
    assert pad > 0


def test_dead_letter_keeps_reason_and_bytes() -> None:
    original = b"\xff" * (DEAD_LETTER_MAX_BYTES + 10)
    dl = dead_letter_of(original, InvalidEventError("not_utf8", "byte 0 is not UTF-8"), "ingest")
    assert dl.truncated
    assert dl.size == len(original)
    assert len(dl.original) == DEAD_LETTER_MAX_BYTES
    headers = dict(dl.headers())
    assert headers["dlq.reason"] == b"not_utf8"
    assert headers["dlq.size"] == str(len(original)).encode()


def test_json_schema_in_docs_is_current() -> None:
    committed = json.loads((DOCS / "event-schema.json").read_text())
    assert committed == event_json_schema(), "regenerate: replayrec bus schema > docs/event-schema.json"
    assert committed["additionalProperties"] is False
    assert set(committed["required"]) == {"event_id", "user", "item", "action", "event_time", "source"}


def test_parse_speed_and_when() -> None:
    assert math.isinf(parse_speed("max"))
    assert parse_speed("86400") == 86400.0
    for bad in ("0", "-3", "fast", "nan"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)
    assert parse_when("2014-01-02") == 1388620800.0
    assert parse_when("2014-01-02T01:00:00Z") == 1388624400.0
    assert parse_when("1388620800") == 1388620800.0
    assert parse_when(None) is None
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_when("02/01/2014")
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ConfigError, match="finite"):
            parse_when(bad)


def test_partitioner_is_kafkas() -> None:
    """murmur2 as the Java client computes it (the test vectors of Kafka's own UtilsTest), so every Kafka
    client puts a user on the same partition as we do."""
    from kafka.partitioner.default import murmur2

    vectors = {
        "21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829, "abc": 479470107,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    }  # fmt: skip
    for key, java in vectors.items():
        signed = murmur2(key.encode())
        signed = signed - 2**32 if signed >= 2**31 else signed
        assert signed == java
        assert partition_of(key, 8) == (java & 0x7FFFFFFF) % 8


def test_pid_lock_admits_one_owner(tmp_path: Path) -> None:
    from replayrec.runtime import PidLock

    path = tmp_path / "x.pid"
    with PidLock(path, "the thing"):
        assert path.read_text().strip().isdigit()
        with pytest.raises(ReplayrecError, match="the thing is already running"), PidLock(path, "the thing"):
            pass
    assert not path.exists()
    with PidLock(path, "the thing"):
        pass


def test_produced_rate_is_computed_when_read() -> None:
    from replayrec.bus import BusMetrics

    m = BusMetrics()
    assert m.produced_per_second() == 0.0
    m.record_produced(100, "replay")
    m.record_produced(100, "replay")
    assert m.produced_per_second() > 0
    assert m.produced.labels("replay")._value.get() == 200


def test_clock_runs_pauses_seeks_and_changes_speed() -> None:
    wall = [100.0]
    clock = ReplayClock(1000.0, 10.0, wall=lambda: wall[0])
    wall[0] += 2
    assert clock.now() == 1020.0
    clock.pause()
    wall[0] += 5
    assert clock.now() == 1020.0
    clock.resume()
    wall[0] += 1
    assert clock.now() == 1030.0
    clock.set_speed(100.0)
    wall[0] += 1
    assert clock.now() == 1130.0
    clock.set(500.0)
    assert clock.now() == 500.0
    clock.resume()  # resuming a running clock changes nothing
    assert clock.now() == 500.0
    wall[0] += 1
    clock.resume()
    assert clock.now() == 600.0
    maxed = ReplayClock(0.0, math.inf, wall=lambda: wall[0])
    wall[0] += 10
    assert maxed.now() == 0.0
    maxed.advance_to(50.0)
    maxed.advance_to(40.0)
    assert maxed.now() == 50.0


def test_published_state_extrapolates_only_while_running() -> None:
    st = ReplayState(
        dataset="d", status="running", clock=1000.0, speed=60.0, updated_at=10.0, clock_running=True
    )
    assert clock_now(st, wall=12.0) == 1120.0
    waiting = st.model_copy(update={"status": "waiting"})  # the clock runs while nothing is due
    assert clock_now(waiting, wall=12.0) == 1120.0
    assert clock_now(st.model_copy(update={"status": "paused", "clock_running": False}), wall=12.0) == 1000.0
    assert clock_now(st.model_copy(update={"speed": "max"}), wall=12.0) == 1000.0


def test_spread_within_days() -> None:
    ts = np.array([0, 0, 0, 0, DAY, 3 * DAY, 3 * DAY], dtype=np.int64)
    out = spread_within_days(ts)
    assert out.tolist() == [0.0, DAY / 4, DAY / 2, 3 * DAY / 4, DAY, 3 * DAY, 3 * DAY + DAY / 2]
    fine = np.array([5, 5, 9], dtype=np.int64)
    assert spread_within_days(fine).tolist() == [5.0, 5.0, 9.0]  # finer than days: kept
    with pytest.raises(ValueError, match="non-decreasing"):
        spread_within_days(np.array([DAY, 0]))


def test_schedule_of_a_dataset(settings) -> None:  # type: ignore[no-untyped-def]
    from replayrec.data import ensure_prepared, load_dataset

    ensure_prepared("synthetic", settings)
    ds = load_dataset("synthetic", settings)
    full = build_schedule(ds, 4)
    assert len(full) == len(ds.events)
    assert np.all(np.diff(full.times) >= 0)
    assert np.all(np.diff(full.seq) > 0)
    t0, t1 = float(full.times[len(full) // 3]), float(full.times[2 * len(full) // 3])
    part = build_schedule(ds, 4, t0, t1)
    assert len(part) > 0
    assert part.times.min() >= t0
    assert part.times.max() < t1
    i = 0
    ev = decode_event(part.encode(i))
    assert ev.event_id == f"synthetic:{int(part.seq[i])}"
    assert ev.source == "replay"
    assert ev.user == part.users[i]
    assert partition_of(ev.user, 4) == part.partitions[i]
    with pytest.raises(ConfigError, match="later than"):
        build_schedule(ds, 4, t1, t0)


def test_schedule_refuses_untimed_data(settings) -> None:  # type: ignore[no-untyped-def]
    from replayrec.data import ensure_prepared, load_dataset

    ensure_prepared("synthetic", settings)
    ds = load_dataset("synthetic", settings)
    ds.events["timestamp"] = 0
    with pytest.raises(DataError, match="no event times"):
        build_schedule(ds, 4)
