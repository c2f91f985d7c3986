"""The event bus against a real Kafka-protocol broker (Tansu, started here on 127.0.0.1) and the real
Redis: replays of the real Books data, controls, a SIGKILLed controller, dead letters, a broker outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

from replayrec import application as app
from replayrec.bus import (
    BusConfig,
    EventPublisher,
    EventReader,
    RedisStateStore,
    ReplayController,
    Schedule,
    build_schedule,
    ensure_topics,
    parse_speed,
    parse_when,
    partition_of,
    read_dead_letters,
    read_events,
    replayed_seqs,
    send_command,
    start_broker,
)
from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.runtime import free_port, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

SLICE_FROM, SLICE_UNTIL = "2014-06-01", "2014-06-21"


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def broker_settings(real_settings: Settings, books) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    """A Tansu broker on a free port for this module; the prepared Books data in the state dir."""
    s = real_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with start_broker(s):
        yield s


@pytest.fixture
def bus(broker_settings: Settings) -> Iterator[Settings]:
    """Settings with a namespace (topics, Redis keys, replay state) of this test's own."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    s = broker_settings.model_copy(update={"bus_namespace": ns})  # the default 8 partitions
    s = s.model_copy(update={"state_dir": broker_settings.state_dir / ns})
    (s.state_dir).mkdir(parents=True)
    os.symlink(broker_settings.state_dir / "datasets", s.state_dir / "datasets")
    ensure_topics(BusConfig.from_settings(s))
    yield s
    RedisStateStore(s.redis_url, ns).clear()


def _schedule(s: Settings, books, start: str = SLICE_FROM, until: str | None = SLICE_UNTIL) -> Schedule:  # type: ignore[no-untyped-def]
    return build_schedule(books, s.event_partitions, parse_when(start), parse_when(until))


def _controller(s: Settings, sched: Schedule, speed: str) -> ReplayController:
    return ReplayController(
        BusConfig.from_settings(s),
        sched,
        parse_speed(speed),
        state_path=s.state_dir / "replay" / "state.json",
        store=RedisStateStore(s.redis_url, s.bus_namespace),
    )


def _in_thread(ctl: ReplayController) -> threading.Thread:
    t = threading.Thread(target=ctl.run, daemon=True)
    t.start()
    return t


def _per_partition(sched: Schedule) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for p, q in zip(sched.partitions.tolist(), sched.seq.tolist(), strict=True):
        out[p].append(q)
    return out


def _logged(s: Settings) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for ce in read_events(BusConfig.from_settings(s)):
        out[ce.partition].append(int(ce.event.event_id.rsplit(":", 1)[1]))
    return out


def test_replay_slice_at_max_speed_reads_back_exactly(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    sched = _schedule(bus, books, SLICE_FROM, None)
    assert len(sched) > 10_000
    state = _controller(bus, sched, "max").run()
    assert state.status == "finished"
    assert state.published == len(sched)
    events = read_events(BusConfig.from_settings(bus))
    ids = [ce.event.event_id for ce in events]
    assert len(ids) == len(set(ids)) == len(sched)  # no duplicates, no losses
    assert set(ids) == {f"{books.name}:{q}" for q in sched.seq.tolist()}
    assert _logged(bus) == _per_partition(sched)  # each partition in schedule order
    by_user: dict[str, list[float]] = defaultdict(list)
    for ce in events:
        by_user[ce.event.user].append(ce.event.timestamp)
        assert ce.partition == partition_of(ce.event.user, bus.event_partitions)
    assert all(t == sorted(t) for t in by_user.values())  # one user's events in time order
    first = events[0].event
    i = int(np.flatnonzero(sched.seq == int(first.event_id.rsplit(":", 1)[1]))[0])
    assert (first.user, first.item, first.action) == (sched.users[i], sched.items[i], "review")
    stored = RedisStateStore(bus.redis_url, bus.bus_namespace).read()
    assert stored is not None
    assert stored.status == "finished"
    assert stored.published == len(sched)


def test_pause_resume_seek_and_speed(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    sched = _schedule(bus, books)
    cfg = BusConfig.from_settings(bus)
    ctl = _controller(bus, sched, str(4 * 86400))
    thread = _in_thread(ctl)
    _wait(lambda: ctl.published > 200, 20, "the first events")

    paused = send_command(cfg, "pause")
    assert paused.status == "paused"
    at_pause = ctl.published
    time.sleep(0.6)
    assert ctl.published == at_pause
    assert ctl.clock.now() == paused.clock
    assert sum(map(len, _logged(bus).values())) == at_pause

    resumed = send_command(cfg, "resume")
    assert resumed.status == "running"
    _wait(lambda: ctl.published > at_pause, 10, "publishing after resume")
    again = send_command(cfg, "resume")  # resuming a running replay does not rewind its clock
    assert again.clock >= resumed.clock

    assert send_command(cfg, "pause").status == "paused"  # seeks while paused: nothing races them
    jump = parse_when("2014-06-14")
    assert jump is not None
    before_seek = ctl.cursor
    sought = send_command(cfg, "seek", jump)
    skipped_range = sched.seq[before_seek : int(np.searchsorted(sched.times, jump))]
    assert sought.skipped == len(skipped_range) > 0
    assert sought.clock == jump
    back = send_command(cfg, "seek", parse_when("2014-06-02"))  # backwards: the clock only
    assert back.clock < jump
    assert back.position == sought.position  # the cursor never moves back
    with pytest.raises(ReplayrecError, match="refused speed"):
        send_command(cfg, "speed", 0)
    faster = send_command(cfg, "speed", "max")
    assert faster.speed == "max"
    assert send_command(cfg, "resume").status == "running"
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert ctl.status == "finished"

    logged = _logged(bus)
    seqs = [q for part in logged.values() for q in part]
    assert len(seqs) == len(set(seqs))  # the backward seek re-sent nothing
    never = set(sched.seq.tolist()) - set(seqs)
    assert never
    assert never <= set(skipped_range.tolist())
    assert all(sched.times[np.searchsorted(sched.seq, q)] < jump for q in never)
    assert len(seqs) == ctl.published == len(sched) - ctl.skipped


def test_a_sigkilled_controller_resumes_without_gap_or_duplicate(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    sched = _schedule(bus, books, SLICE_FROM, None)
    store = RedisStateStore(bus.redis_url, bus.bus_namespace)
    env = {**os.environ, **app.settings_env(bus)}
    argv = [sys.executable, "-m", "replayrec", "replay", "start", "--dataset", books.name,
            "--from", SLICE_FROM, "--speed", str(20 * 86400), "--no-metrics"]  # fmt: skip
    log = bus.state_dir / "killed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(
            lambda: (st := store.read()) is not None and st.published > 3000, 60, "the controller to publish"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = sum(map(len, _logged(bus).values()))
    assert 0 < before < len(sched)

    state = _controller(bus, sched, "max").run()  # the restart
    assert state.status == "finished"
    assert state.already >= before - 1  # what the log held was not sent again
    assert _logged(bus) == _per_partition(sched)  # every event once, in order


def test_bad_events_go_to_dead_letters(bus: Settings) -> None:
    cfg = BusConfig.from_settings(bus)
    good = {"user": "u1", "item": "i1", "action": "click", "event_time": "2014-01-01T00:00:00Z"}
    huge = json.dumps({**good, "item": "x" * (1024 * 1024)}).encode()
    payloads: list[object] = [
        {**good, "event_id": "g1"},
        {"user": "u1", "action": "click", "event_time": "2014-01-01T00:00:01Z"},  # no item
        {**good, "user": 17},  # wrong type
        {**good, "action": "like"},  # unknown action
        huge,
        b"\xff\xfe not utf-8",
        b"{not json",
        {**good, "event_id": "g2", "event_time": "2014-01-01T00:00:02Z"},
    ]
    publisher = EventPublisher(cfg)
    result = publisher.ingest(payloads)
    publisher.close()
    assert result.accepted == ["g1", "g2"]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (1, "invalid"), (2, "invalid"), (3, "invalid"), (4, "too_large"), (5, "not_utf8"), (6, "not_json"),
    ]  # fmt: skip
    assert "item: Field required" in result.rejected[0].message
    assert publisher.metrics.dead_letters.labels("invalid")._value.get() == 3

    events = read_events(cfg)
    assert [ce.event.event_id for ce in events] == ["g1", "g2"]  # the good ones, in order
    letters = read_dead_letters(cfg)
    assert [d.reason for d in letters] == [
        "invalid",
        "invalid",
        "invalid",
        "too_large",
        "not_utf8",
        "not_json",
    ]
    assert letters[3].size == len(huge)
    assert letters[3].truncated
    assert huge.startswith(letters[3].original)
    assert letters[4].original == b"\xff\xfe not utf-8"
    assert letters[5].original == b"{not json"
    assert all(d.origin == "ingest" for d in letters)


def test_foreign_garbage_on_the_topic_is_skipped_and_dead_lettered(bus: Settings) -> None:
    cfg = BusConfig.from_settings(bus)
    raw = KafkaProducer(bootstrap_servers=cfg.servers)
    good = json.dumps({"event_id": "a", "user": "u", "item": "i", "action": "view",
                       "event_time": "2014-01-01T00:00:00Z", "source": "live"}).encode()  # fmt: skip
    for value in (good, b"\xc3\x28garbage", good.replace(b'"a"', b'"b"'), b'{"schema_version": 9}'):
        raw.send(cfg.events_topic, value=value, key=b"u")
    raw.flush()
    raw.close()
    reader = EventReader(cfg, dead_letters=True)
    got = reader.read({}, reader.end_offsets())
    reader.close()
    assert [c.event.event_id for c in got] == ["a", "b"]
    assert reader.rejected == {"not_utf8": 1, "unsupported_version": 1}
    part = partition_of("u", cfg.event_partitions)
    assert {c.partition for c in got} == {part}  # the broker's partition for the key is ours
    letters = read_dead_letters(cfg)
    assert sorted(d.origin for d in letters) == [
        f"{cfg.events_topic}:{part}:1",
        f"{cfg.events_topic}:{part}:3",
    ]


def test_broker_outage_mid_replay(books, tmp_path: Path, real_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Memory storage: the restarted broker starts empty (a new events topic); the controller notices, and
    sends the replay again from its start, so the new log holds every event once, in order."""
    s = real_settings.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "state_dir": tmp_path,
                "bus_namespace": f"o{uuid.uuid4().hex[:8]}"}
    )  # fmt: skip
    os.symlink(real_settings.state_dir / "datasets", tmp_path / "datasets")
    sched = _schedule(s, books)
    broker = start_broker(s)
    ctl = _controller(s, sched, str(3 * 86400))
    thread = _in_thread(ctl)
    try:
        _wait(lambda: ctl.published > 300, 20, "the first events")
        broker.stop()
        _wait(lambda: ctl.status == "broker-unavailable", 15, "the outage to be reported")
        assert ctl.outages == 1
        store = RedisStateStore(s.redis_url, s.bus_namespace)

        def stored_status() -> str | None:
            stored = store.read()
            return stored.status if stored is not None else None

        # the shared state follows the controller's own (written a moment later: wait, bounded)
        _wait(lambda: stored_status() == "broker-unavailable", 15, "the outage to reach Redis")
        time.sleep(1.0)
        broker = start_broker(s)
        thread.join(timeout=90)
        assert not thread.is_alive()
        assert ctl.status == "finished"
        assert _logged(s) == _per_partition(sched)  # the whole replay on the new log, once, in order
        assert ctl.metrics.outages._value.get() == 1
    finally:
        ctl.stop_requested.set()
        thread.join(timeout=30)
        broker.stop()
        RedisStateStore(s.redis_url, s.bus_namespace).clear()


def test_progress_is_found_behind_live_events_and_readers_are_reusable(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    cfg = BusConfig.from_settings(bus)
    sched = _schedule(bus, books, "2014-06-01", "2014-06-03")
    assert _controller(bus, sched, "max").run().published == len(sched)
    publisher = EventPublisher(cfg)
    live = [{"user": "u1", "item": "i", "action": "view", "event_time": "2014-06-04T00:00:00Z"}] * 40
    assert len(publisher.ingest(live).accepted) == 40
    forged = publisher.ingest([{**live[0], "event_id": f"{books.name}:999999", "source": "replay"}])
    assert [r.message for r in forged.rejected] == ["source: live ingest takes source 'live' only"]
    publisher.close()
    # the replayed events lie behind more than one window of live events on u1's partition
    assert replayed_seqs(cfg, books.name, int(sched.seq[0]), window=5) == set(sched.seq.tolist())
    reader = EventReader(cfg)
    first = reader.end_offsets()
    assert len(reader.read({}, first)) == len(sched) + 40
    more = EventPublisher(cfg)
    more.ingest(live[:3])
    more.close()
    second = reader.end_offsets()  # the same reader again: a fresh high watermark, and it reads on
    assert sum(second.values()) == sum(first.values()) + 3
    assert len(reader.read(first, second)) == 3
    reader.close()


def test_partition_count_mismatch_is_refused(bus: Settings) -> None:
    wrong = BusConfig(bus.bootstrap_servers, bus.bus_namespace, 3)
    with pytest.raises(ConfigError, match="has 8 partitions, the settings say 3"):
        ensure_topics(wrong)


def test_replay_metrics_are_served(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    stop = threading.Event()
    req = app.ReplayRequest(books.name, SLICE_FROM, SLICE_UNTIL, str(2 * 86400), metrics_port=port)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(app.run_replay(bus, req, stop)), daemon=True)
    t.start()
    store = RedisStateStore(bus.redis_url, bus.bus_namespace)
    try:
        _wait(lambda: (st := store.read()) is not None and st.published > 100, 30, "published events")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop.set()
        t.join(timeout=30)
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines() if line[:1] != "#"}
    assert metrics['replayrec_bus_events_produced_total{source="replay"}'] > 100
    jan = parse_when(SLICE_FROM)
    assert jan is not None
    assert jan <= metrics["replayrec_replay_clock_seconds"] < jan + 21 * 86400
    assert metrics["replayrec_replay_speed"] == 2 * 86400
    assert "replayrec_replay_lag_seconds" in metrics
    assert "replayrec_bus_produced_per_second" in metrics
    assert result
    assert getattr(result[0], "status", None) == "stopped"


def test_cli_bus_lifecycle(tmp_path: Path) -> None:
    port = free_port()
    ns = f"cli{uuid.uuid4().hex[:8]}"  # its own Redis key and topics
    env = {
        **os.environ,
        "REPLAYREC_STATE_DIR": str(tmp_path),
        "REPLAYREC_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "REPLAYREC_BUS_NAMESPACE": ns,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert cli("bus", "start", "--detach").returncode == 0
    try:
        assert "already running" in cli("bus", "start", "--detach").stderr
        st = json.loads(cli("bus", "status", "--json").stdout)
        assert st["reachable"]
        assert st["embedded"]["running"]
        assert st["topics"][f"{ns}.events"] == {"partitions": 8, "messages": 0}
        pid = st["embedded"]["pid"]
        ingest = subprocess.run(
            [sys.executable, "-m", "replayrec", "bus", "ingest", "--json", "-"], env=env, text=True,
            input='{"user":"u","item":"i","action":"view","event_time":"2014-01-01T00:00:00Z"}\nnope\n',
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert json.loads(ingest.stdout)["accepted"] == 1
        topics = json.loads(cli("bus", "status", "--json").stdout)["topics"]
        assert topics[f"{ns}.events.dlq"]["messages"] == 1
        none = cli("replay", "pause")
        assert none.returncode != 0
        assert "no replay controller" in none.stderr
    finally:
        assert cli("bus", "stop").returncode == 0
    assert not pid_alive(pid)
    down = cli("bus", "status", "--json")
    assert down.returncode == 1
    assert not json.loads(down.stdout)["reachable"]


def test_cli_steers_a_detached_controller(bus: Settings, books) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, **app.settings_env(bus)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", *args], env=env, capture_output=True, text=True, timeout=90,
            check=False,
        )  # fmt: skip

    args = ["--dataset", books.name, "--from", SLICE_FROM, "--speed", "86400", "--detach", "--no-metrics"]
    start = cli("replay", "start", *args)
    assert start.returncode == 0, start.stderr
    try:
        assert "already running" in cli("replay", "start", "--dataset", books.name, "--detach").stderr
        assert cli("replay", "pause").returncode == 0
        st = json.loads(cli("replay", "status", "--json").stdout)
        assert st["running"]
        assert st["state"]["status"] == "paused"
        assert cli("replay", "seek", "2014-07-01").returncode == 0
        bad = cli("replay", "speed", "fast")
        assert bad.returncode == 2
        assert "speed 'fast'" in bad.stderr
        st = json.loads(cli("replay", "status", "--json").stdout)
        assert st["clock_iso"].startswith("2014-07-01")
        assert st["state"]["skipped"] > 0
    finally:
        stopped = cli("replay", "stop")
    assert stopped.returncode == 0
    final = json.loads(cli("replay", "status", "--json").stdout)
    assert not final["running"]
    assert final["state"]["status"] == "stopped"
