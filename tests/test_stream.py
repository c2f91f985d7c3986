"""The streaming job against the real services: a Tansu broker (started here on 127.0.0.1), real Spark
(``local[2]``, started by the job) and the real Redis. Slices of the real Books data are replayed; the online
store is compared with the offline feature implementation, exactly, after crashes and a flushed Redis too."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from kafka import KafkaProducer

from replayrec import application as app
from replayrec.bus import (
    BusConfig,
    EventPublisher,
    RedisStateStore,
    ReplayController,
    Schedule,
    build_schedule,
    ensure_topics,
    parse_when,
    partition_of,
    read_dead_letters,
    start_broker,
)
from replayrec.config import Settings
from replayrec.errors import ReplayrecError
from replayrec.features import OfflineFeatures, OnlineFeatures
from replayrec.runtime import free_port, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.realdata, pytest.mark.slow]

WEEKS = ["2014-06-01", "2014-06-08", "2014-06-15", "2014-06-22"]
FLUSH_DB = 9  # the flush test empties this Redis database (nothing else of the project uses it)


def _ms(day: str) -> int:
    when = parse_when(day)
    assert when is not None
    return int(when * 1000)


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def broker(real_settings: Settings, books) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    s = real_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with start_broker(s):
        yield s


def _namespace(broker: Settings, db: int = 0) -> Settings:
    ns = f"s{uuid.uuid4().hex[:10]}"
    s = broker.model_copy(
        update={
            "bus_namespace": ns,
            "state_dir": broker.state_dir / ns,
            "redis_url": f"redis://127.0.0.1:6379/{db}",
        }
    )
    s.state_dir.mkdir(parents=True)
    os.symlink(broker.state_dir / "datasets", s.state_dir / "datasets")
    ensure_topics(BusConfig.from_settings(s))
    return s


@pytest.fixture
def ns(broker: Settings, books) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    """A namespace of this test's own (topics, Redis keys, job state); the job is stopped and the keys are
    deleted after."""
    s = _namespace(broker)
    yield s
    _teardown(s, books)


def _teardown(s: Settings, books) -> None:  # type: ignore[no-untyped-def]
    pid = app.stream_stop(s)
    app.online_store(s, books).clear()
    RedisStateStore(s.redis_url, s.bus_namespace).clear()
    if pid is not None:
        _wait(lambda: not _group_alive(pid), 15, "the job's process group to end")


def _group_alive(pgid: int) -> bool:
    """Is any process of the group left (the leader, our child, is reaped first: a zombie counts not)?"""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _replay(s: Settings, books, start: str, until: str) -> Schedule:  # type: ignore[no-untyped-def]
    sched = build_schedule(books, s.event_partitions, parse_when(start), parse_when(until))
    state = ReplayController(
        BusConfig.from_settings(s), sched, float("inf"), state_path=s.state_dir / "replay" / f"{start}.json"
    ).run()
    assert state.status == "finished"
    assert state.published == len(sched)
    return sched


def _start(s: Settings, **kw: int) -> int:
    return app.stream_start_detached(s, app.StreamRequest(metrics_port=None, **kw))


def _assert_parity(store: OnlineFeatures, off: OfflineFeatures, at_ms: int) -> int:
    """Every user's profile and every item's statistics (and the global counters, the popular list) online
    equal the offline implementation's as of ``at_ms``, exactly; the number of users compared."""
    users = off.users_before(at_ms)
    online = store.profiles(users, at_ms)
    differ = [p.user for p in online if not p.same_as(off.profile(p.user, at_ms))]
    assert not differ, f"{len(differ)} of {len(users)} profiles differ, e.g. {differ[:3]}"
    items = np.unique(off.items[off.times < at_ms])
    assert store.item_stats(items).same_as(off.item_stats(items, at_ms))
    assert store.global_counts() == off.global_counts(at_ms)
    assert store.popular(at_ms, 30, 100) == off.popular(at_ms, 30, 100)
    total, window, first, last = store.item_features(items, at_ms, 7)
    o_total, o_window, o_first, o_last = off.item_features(items, at_ms, 7)
    assert np.array_equal(total, o_total)
    assert np.array_equal(window, o_window)
    assert np.array_equal(first, o_first)
    assert np.array_equal(last, o_last)
    return len(users)


def test_parity_with_the_offline_features_at_several_replay_moments(ns: Settings, books) -> None:  # type: ignore[no-untyped-def]
    store = app.online_store(ns, books)
    off = OfflineFeatures.from_dataset(books, since_ms=_ms(WEEKS[0]))
    cli = [
        sys.executable,
        "-m",
        "replayrec",
        "stream",
        "run",
        "--detach",
        "--max-records",
        "1500",
        "--no-metrics",
    ]
    env = {**os.environ, **app.settings_env(ns)}
    subprocess.run(cli, env=env, check=True, timeout=120, capture_output=True)
    again = subprocess.run(cli, env=env, timeout=60, capture_output=True, text=True, check=False)
    assert again.returncode != 0
    assert "already running" in again.stderr
    compared = []
    for a, b in itertools.pairwise(WEEKS):
        _replay(ns, books, a, b)
        app.wait_for_stream(ns, store, 120)
        compared.append(_assert_parity(store, off, _ms(b)))
    assert compared[0] > 1000
    assert compared[-1] > compared[0]
    meta = store.meta()
    assert meta is not None
    assert meta.ready
    assert meta.batch >= 6
    assert meta.applied == int((off.times < _ms(WEEKS[-1])).sum())
    assert meta.dead == 0
    out = subprocess.run(
        [sys.executable, "-m", "replayrec", "stream", "status", "--json"], env=env, check=True, timeout=60,
        capture_output=True, text=True,
    )  # fmt: skip
    st = json.loads(out.stdout)
    assert st["running"]
    assert st["lag"] == 0
    assert st["store"]["applied"] == meta.applied
    subprocess.run([sys.executable, "-m", "replayrec", "stream", "stop"], env=env, check=True, timeout=60)
    assert not app.stream_status(ns)["running"]


def test_sigkilled_job_restarts_to_the_exact_ground_truth(ns: Settings, books) -> None:  # type: ignore[no-untyped-def]
    store = app.online_store(ns, books)
    off = OfflineFeatures.from_dataset(books, since_ms=_ms(WEEKS[0]))
    _replay(ns, books, WEEKS[0], WEEKS[2])
    rng = random.Random(20261201)
    feeder = threading.Thread(target=_replay, args=(ns, books, WEEKS[2], WEEKS[3]))
    kills, seen_batch = 0, -1
    while kills < 3:
        pid = _start(ns, max_records=400, trigger_ms=200)
        if kills == 1:
            feeder.start()  # more events arrive while the job is being killed
        _wait(
            lambda a=seen_batch: (m := store.meta()) is not None and m.batch > a, 90, "a batch after restart"
        )
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside a later batch, or between two
        os.killpg(pid, signal.SIGKILL)  # the driver, its JVM and the Python workers at once
        _wait(lambda p=pid: not _group_alive(p), 15, "the killed job to be gone")
        meta = store.meta()
        assert meta is not None
        seen_batch = meta.batch
        kills += 1
    feeder.join(60)
    applied_before = store.meta().applied  # type: ignore[union-attr]
    assert 0 < applied_before < int((off.times < _ms(WEEKS[3])).sum())  # the kills came mid-stream
    _start(ns, max_records=400, trigger_ms=200)
    app.wait_for_stream(ns, store, 180)
    assert _assert_parity(store, off, _ms(WEEKS[3])) > 3000
    meta = store.meta()
    assert meta is not None
    assert meta.applied == int((off.times < _ms(WEEKS[3])).sum())


def test_flushed_redis_is_rebuilt_from_the_log(broker: Settings, books) -> None:  # type: ignore[no-untyped-def]
    s = _namespace(broker, FLUSH_DB)
    r = redis.Redis.from_url(s.redis_url)
    try:
        store = app.online_store(s, books)
        off = OfflineFeatures.from_dataset(books, since_ms=_ms(WEEKS[0]))
        port = free_port()
        app.stream_start_detached(s, app.StreamRequest(max_records=1500, metrics_port=port))
        _replay(s, books, WEEKS[0], WEEKS[1])
        app.wait_for_stream(s, store, 120)
        first = store.meta()
        assert first is not None
        r.flushdb()  # Redis loses everything mid-stream (the next batch or the idle watchdog notices)
        _replay(s, books, WEEKS[1], WEEKS[2])  # the next batch notices
        app.wait_for_stream(s, store, 180)
        _assert_parity(store, off, _ms(WEEKS[2]))
        rebuilt = store.meta()
        assert rebuilt is not None
        assert rebuilt.epoch != first.epoch
        assert rebuilt.ready
        assert rebuilt.applied == int((off.times < _ms(WEEKS[2])).sum())
        r.flushdb()  # and once more while no event arrives: the job's watchdog rebuilds
        _wait(lambda: (m := store.meta()) is not None and m.ready, 60, "the idle rebuild")
        app.wait_for_stream(s, store, 60)
        _assert_parity(store, off, _ms(WEEKS[2]))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "replayrec_stream_rebuilds_total 2.0" in metrics
    finally:
        _teardown(s, books)
        r.flushdb()


def _live(user: str, item: str, when: datetime, n: int) -> dict[str, object]:
    return {
        "event_id": f"live:{user}:{n}", "user": user, "item": item, "action": "click", "rating": None,
        "event_time": when.isoformat(), "source": "live",
    }  # fmt: skip


def test_unusable_events_go_to_the_dead_letter_topic_and_the_batch_goes_on(ns: Settings, books) -> None:  # type: ignore[no-untyped-def]
    store = app.online_store(ns, books)
    cfg = BusConfig.from_settings(ns)
    port = free_port()
    app.stream_start_detached(ns, app.StreamRequest(metrics_port=port))
    items = books.items["raw_id"].astype(str).tolist()
    user, now = "live-user-1", datetime.now(UTC).replace(microsecond=0)
    pub = EventPublisher(cfg)
    res = pub.ingest([_live(user, items[0], now, 0), _live(user, "no-such-item", now, 1)])
    assert len(res.accepted) == 2
    app.wait_for_stream(ns, store, 90)
    one = store.profile(user)
    assert one.version == 1
    assert one.recent_items.tolist() == [0]
    # malformed bytes from some other producer, then an event two hours behind its partition, then good ones
    raw = KafkaProducer(bootstrap_servers=cfg.servers)
    raw.send(
        cfg.events_topic, b"{not json", key=user.encode(), partition=partition_of(user, cfg.event_partitions)
    )
    raw.flush()
    raw.close()
    late, ahead = now - timedelta(hours=2), now + timedelta(days=1)
    batch = [_live(user, items[1], late, 2), _live(user, items[4], ahead, 5)]
    res = pub.ingest([*batch, _live(user, items[2], now, 3), _live(user, items[3], now, 4)])
    assert len(res.accepted) == 4
    pub.close()
    app.wait_for_stream(ns, store, 90)
    prof = store.profile(user)
    assert prof.version == 3
    assert prof.recent_items.tolist() == [0, 2, 3]
    assert prof.exclude.tolist() == [0, 2, 3]
    assert prof.counts == {"click": 3}
    meta = store.meta()
    assert meta is not None
    assert meta.dead == 4
    assert meta.applied == 3
    letters = read_dead_letters(cfg)
    assert sorted(d.reason for d in letters) == ["from_the_future", "not_json", "too_late", "unknown_item"]
    late_letter = next(d for d in letters if d.reason == "too_late")
    assert json.loads(late_letter.original)["item"] == items[1]  # the event itself, re-encoded

    def scrape() -> str:
        return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())

    # the lag gauge is set just after a batch's apply, which wait_for_stream may have seen first
    _wait(lambda: "replayrec_stream_lag_events 0.0" in scrape(), 30, "the lag gauge to read 0")
    metrics = scrape()
    for line in (
        'replayrec_stream_dead_letters_total{reason="too_late"} 1.0',
        'replayrec_stream_dead_letters_total{reason="unknown_item"} 1.0',
        'replayrec_stream_dead_letters_total{reason="not_json"} 1.0',
        "replayrec_stream_events_applied_total 3.0",
        "replayrec_stream_lag_events 0.0",
    ):
        assert line in metrics, line
    count = next(
        ln for ln in metrics.splitlines() if ln.startswith("replayrec_stream_freshness_seconds_count")
    )
    assert float(count.split()[-1]) == 3.0
    assert pid_alive(app.stream_status(ns)["pid"])


def test_stream_commands_refuse_without_services(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    with pytest.raises(ReplayrecError, match="no Kafka broker"):
        app.stream_start_detached(s, app.StreamRequest(metrics_port=None))
    assert app.stream_stop(s) is None
