"""The feature definitions: the offline implementation against brute-force definitions, and the online store
(real Redis on 127.0.0.1) against the offline one under any batching, replays and a lost store."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import redis

from replayrec.bus import BusConfig
from replayrec.errors import ConfigError
from replayrec.features import (
    DAY_MS,
    EventColumns,
    FeatureSpec,
    OfflineFeatures,
    OnlineFeatures,
    StoreNotReadyError,
    build_payload,
    screen,
    view_namespace,
    window_start_ms,
)
from replayrec.stream import FeatureSink
from replayrec.stream._records import KIND_EVENT, KIND_RANGE, SCHEMA, split_limit

N_ITEMS, N_GROUPS, N_USERS = 60, 5, 25
T0 = 1_600_000_000_000  # a Unix time in ms (2020-09-13)


def _table(n: int = 3000, seed: int = 7) -> tuple[list[str], np.ndarray, np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    users = [f"u{int(u)}" for u in rng.integers(0, N_USERS, n)]
    items = rng.integers(0, N_ITEMS, n).astype(np.int64)
    times = np.sort(T0 + rng.integers(0, 90 * DAY_MS, n)).astype(np.int64)  # log order = time order
    actions = rng.choice(["view", "click", "purchase"], n).tolist()
    groups = (np.arange(N_ITEMS) % N_GROUPS).astype(np.int64)
    return users, items, times, actions, groups


def _offline(spec: FeatureSpec | None = None) -> OfflineFeatures:
    users, items, times, actions, groups = _table()
    return OfflineFeatures(users, items, times, actions, groups, spec)


def test_profile_matches_the_definition() -> None:
    off = _offline(FeatureSpec(recent_events=8))
    users, items, times, actions, groups = _table()
    at = int(times[1800])
    for u in ("u0", "u3", "u17"):
        rows = [i for i, x in enumerate(users) if x == u and times[i] < at]
        p = off.profile(u, at)
        assert p.version == len(rows)
        newest = rows[-8:]
        assert sorted(zip(p.recent_times.tolist(), p.recent_items.tolist(), strict=True)) == sorted(
            (int(times[i]), int(items[i])) for i in newest
        )
        assert np.all(np.diff(p.recent_times) >= 0)  # oldest first: a request's history
        assert p.exclude.tolist() == sorted({int(items[i]) for i in rows})
        assert p.counts == {a: sum(actions[i] == a for i in rows) for a in sorted({actions[i] for i in rows})}
        assert (p.first_ms, p.last_ms) == (int(times[rows[0]]), int(times[rows[-1]]))
        expect = np.zeros(N_GROUPS)
        for i in rows:
            expect[groups[items[i]]] += 2 ** (-((at // DAY_MS) - times[i] // DAY_MS) / 30.0)
        assert np.allclose(p.interest, expect / expect.sum())
        assert p.interest.sum() == pytest.approx(1.0)


def test_an_unknown_user_has_an_empty_profile() -> None:
    p = _offline().profile("nobody", T0 + 10 * DAY_MS)
    assert p.version == 0 and p.recent_items.size == 0 and p.first_ms is None  # noqa: PT018
    assert not p.interest.any()


def test_item_statistics_and_windows_match_the_definition() -> None:
    off = _offline()
    _, items, times, _, _ = _table()
    at = int((times[2000] // DAY_MS) * DAY_MS)  # a midnight: the window is exactly [at - 7 days, at)
    assert window_start_ms(at, 7) == at - 7 * DAY_MS
    ids = np.arange(N_ITEMS)
    st = off.item_stats(ids, at)
    total, window, first, last = off.item_features(ids, at, 7)
    for it in (0, 13, 59):
        t = times[(items == it) & (times < at)]
        assert st.total[it] == t.size == total[it]
        assert window[it] == st.window(at, 7)[it] == int((t >= at - 7 * DAY_MS).sum())
        assert first[it] == st.first_ms[it] == (t.min() if t.size else -1)
        assert last[it] == st.last_ms[it] == (t.max() if t.size else -1)
    later = at + DAY_MS // 2  # mid-day: the 7 whole days before plus this day so far
    _, win, _, _ = off.item_features(ids, later, 7)
    t = times[(items == 13) & (times < later)]
    assert win[13] == int((t >= at - 7 * DAY_MS).sum())


def test_popular_breaks_ties_by_item_id() -> None:
    off = OfflineFeatures(
        ["a", "b", "c", "a"], [3, 1, 3, 1], [T0, T0 + 1, T0 + 2, T0 + 3], ["view"] * 4, np.zeros(5)
    )
    assert off.popular(T0 + 10, 30, 5) == [(1, 2), (3, 2)]


def test_lateness_depends_on_the_log_not_on_batch_boundaries() -> None:
    spec = FeatureSpec(lateness_s=60)
    times = np.array([100_000, 200_000, 120_000, 300_000, 139_000, 150_000], dtype=np.int64) + T0
    ev = EventColumns(
        np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2]), ["u"] * 6, np.zeros(6, np.int64), times,
        ["view"] * 6, np.zeros(6, np.int64),
    )  # fmt: skip
    whole, reasons, wm = screen(ev, {}, spec)
    assert whole.tolist() == [True, True, False, True, False, False]
    assert reasons[2] == "too_late"
    first = np.array([True, True, False, True, False, False])
    a, _, wm_a = screen(ev.take(first), {}, spec)
    b, _, wm_b = screen(ev.take(~first), wm_a, spec)
    assert np.concatenate([a, b]).tolist() == [True, True, True, False, False, False]
    assert wm_b == wm


def test_split_limit_shares_the_limit_fairly() -> None:
    start = {0: 10, 1: 0, 2: 5}
    latest = {0: 1000, 1: 3, 2: 5}
    end = split_limit(start, latest, 100)
    assert end == {0: 107, 1: 3, 2: 5}  # partition 1 takes all it has, 0 the rest, 2 had nothing
    assert sum(end[p] - start[p] for p in end) == 100
    assert split_limit(start, latest, 10_000) == latest


# -- the online store (real Redis) ------------------------------------------------------------------------
@pytest.fixture
def store() -> Iterator[OnlineFeatures]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    s = OnlineFeatures(client, f"tf{uuid.uuid4().hex[:8]}", _table()[4])
    yield s
    s.clear()


def _columns(lo: int, hi: int) -> EventColumns:
    users, items, times, actions, _ = _table()
    idx = np.arange(lo, hi)
    part = np.array([int(u[1:]) % 2 for u in users], dtype=np.int64)
    return EventColumns(
        part[idx], idx.astype(np.int64), [users[i] for i in idx], items[idx], times[idx],
        [actions[i] for i in idx], np.zeros(idx.size, np.int64),
    )  # fmt: skip


def _apply(store: OnlineFeatures, lo: int, hi: int) -> str:
    meta = store.meta()
    assert meta is not None
    ev = _columns(lo, hi)
    ok, _, wm = screen(ev, meta.watermarks, store.spec)
    return store.apply(
        meta, build_payload(ev.take(ok), store.groups, store.spec), {0: hi}, wm, batch=0, dead=0
    ).status


@pytest.mark.integration
def test_online_equals_offline_under_any_batching(store: OnlineFeatures) -> None:
    off = _offline()
    store.initialise("cat")
    cuts = [0, 1, 2, 40, 41, 700, 1500, 1501, 2999, 3000]
    for lo, hi in itertools.pairwise(cuts):
        assert _apply(store, lo, hi) == "ok"
        at = int(off.times[hi - 1]) + 1
        users = sorted(set(_table()[0][:hi]))
        assert all(p.same_as(off.profile(p.user, at)) for p in store.profiles(users, at))
    at = int(off.times[-1]) + 1
    ids = np.arange(N_ITEMS)
    assert store.item_stats(ids).same_as(off.item_stats(ids, at))
    for days in (1, 7, 30, 365):  # summed in Redis: the same numbers as the definition's window
        got = store.item_features(ids, at, days)
        want = off.item_features(ids, at, days)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), days
    assert store.global_counts() == off.global_counts(at)
    assert store.popular(at, 30, 10) == off.popular(at, 30, 10)
    assert store.users() == sorted(set(_table()[0]))


@pytest.mark.integration
def test_a_replayed_batch_changes_nothing(store: OnlineFeatures) -> None:
    store.initialise("cat")
    stale = store.meta()
    assert stale is not None
    assert _apply(store, 0, 500) == "ok"
    before = store.profile("u1", T0 + 100 * DAY_MS)
    ev = _columns(0, 500)
    ok, _, wm = screen(ev, {}, store.spec)
    again = store.apply(
        stale, build_payload(ev.take(ok), store.groups, store.spec), {0: 500}, wm, batch=0, dead=0
    )
    assert again.status == "moved"  # the position moved since that meta was read
    assert store.profile("u1", T0 + 100 * DAY_MS).same_as(before)
    assert before.version == sum(u == "u1" for u in _table()[0][:500])


@pytest.mark.integration
def test_a_lost_store_is_noticed_and_rebuilt_from_nothing(store: OnlineFeatures) -> None:
    meta = store.initialise("cat")
    assert _apply(store, 0, 300) == "ok"
    store.r.delete(store.meta_key)  # the epoch marker is gone, profile keys are left over
    ev = _columns(300, 400)
    assert (
        store.apply(meta, build_payload(ev, store.groups, store.spec), {0: 400}, {}, batch=1, dead=0).status
        == "lost"
    )
    fresh = store.initialise("cat", rebuild_to={0: 300})
    assert fresh.epoch != meta.epoch and fresh.status == "rebuilding"  # noqa: PT018
    assert store.users() == []  # leftovers cleared: nothing is counted twice
    assert _apply(store, 0, 300) == "ok"
    done = store.meta()
    assert done is not None and done.ready  # noqa: PT018


@pytest.mark.integration
def test_another_catalogue_or_feature_spec_is_refused(store: OnlineFeatures) -> None:
    meta = store.initialise("cat-a")
    with pytest.raises(ConfigError, match="catalogue cat-a"):
        store.check_compatible(meta, "cat-b")
    other = OnlineFeatures(store.r, store.prefix.split(":")[0], store.groups, FeatureSpec(recent_events=10))
    with pytest.raises(ConfigError, match="features"):
        other.check_compatible(meta, "cat-a")


# -- the stream's sink on hand-built batches (real Redis; no Spark, no broker) ------------------------------
def _batch(ranges: dict[int, tuple[int, int]], rows: list[tuple[int, int, str, str, int]]) -> pa.Table:
    """A :data:`SCHEMA` table: a range row per partition, then events (partition, offset, user, item, ms)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}

    def row(**v: Any) -> None:
        for name, values in cols.items():
            values.append(v.get(name))

    for p, (s, e) in ranges.items():
        row(kind=KIND_RANGE, partition=p, offset=s, range_end=e)
    for p, o, u, it, t in rows:
        row(kind=KIND_EVENT, partition=p, offset=o, produced_ms=t, user=u, item=it, action="view", time_ms=t,
            raw=b"{}")  # fmt: skip
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def _sink(store: OnlineFeatures) -> FeatureSink:
    return FeatureSink(
        store, BusConfig("127.0.0.1:1", "unused", 2), {str(i): i for i in range(N_ITEMS)}, "cat"
    )


@pytest.mark.integration
def test_the_sink_applies_a_replayed_or_overlapping_batch_once(store: OnlineFeatures) -> None:
    sink = _sink(store)
    first = _batch(
        {0: (0, 2), 1: (0, 1)}, [(0, 0, "a", "1", T0), (0, 1, "a", "2", T0 + 1), (1, 0, "b", "3", T0)]
    )
    assert sink.process(0, first).outcome == "applied"
    assert sink.process(0, first).outcome == "duplicate"  # Spark re-running the batch after a crash
    assert store.profile("a", T0 + 10).version == 2
    # a batch that starts before the store's position in partition 0 (the store is ahead of the checkpoint)
    overlap = _batch(
        {0: (1, 3), 1: (1, 2)}, [(0, 1, "a", "2", T0 + 1), (0, 2, "a", "4", T0 + 2), (1, 1, "b", "5", T0)]
    )
    rep = sink.process(1, overlap)
    assert (rep.outcome, rep.skipped, rep.applied) == ("applied", 1, 2)
    a, b = store.profiles(["a", "b"], T0 + 10)
    assert a.version == 3 and a.recent_items.tolist() == [1, 2, 4]  # noqa: PT018
    assert b.version == 2 and b.exclude.tolist() == [3, 5]  # noqa: PT018
    meta = store.meta()
    assert meta is not None and meta.offsets == {0: 3, 1: 2} and meta.applied == 5  # noqa: PT018


@pytest.mark.integration
def test_readers_refuse_a_store_that_is_missing_or_rebuilding(store: OnlineFeatures) -> None:
    with pytest.raises(StoreNotReadyError, match="no online store") as missing:
        store.profiles(["a"])
    assert missing.value.status == "missing"
    store.initialise("cat", rebuild_to={0: 10})
    with pytest.raises(StoreNotReadyError, match="rebuilt") as rebuilding:
        store.item_stats([1, 2])
    assert rebuilding.value.status == "rebuilding"
    with pytest.raises(StoreNotReadyError, match="rebuilt"):
        store.item_features([1, 2], T0, 30)


def test_an_event_dated_after_its_production_is_refused_and_moves_nothing() -> None:
    spec = FeatureSpec(lateness_s=60, max_ahead_s=60)
    times = np.array([T0, T0 + 86_400_000, T0 + 1000], dtype=np.int64)
    ev = EventColumns(
        np.zeros(3, np.int64), np.arange(3), ["u"] * 3, np.zeros(3, np.int64), times, ["view"] * 3,
        np.array([T0, T0 + 1000, T0 + 1000], dtype=np.int64),
    )  # fmt: skip
    usable, reasons, wm = screen(ev, {}, spec)
    assert usable.tolist() == [True, False, True]
    assert reasons[1] == "from_the_future"
    assert wm == {0: T0 + 1000}  # the day-ahead event did not hold the partition back


@pytest.mark.integration
def test_a_snapshot_view_stays_as_it_was_while_the_store_moves_on(store: OnlineFeatures) -> None:
    store.initialise("cat")
    assert _apply(store, 0, 1000) == "ok"
    at = T0 + 100 * DAY_MS
    view = OnlineFeatures(store.r, view_namespace(store.prefix[:-3], "nightly"), store.groups)
    try:
        copied = store.copy_to(view, ["u1", "u2"], as_of_ms=at)
        assert copied > 3
        assert view.as_of_ms() == at  # the moment the snapshot stands for
        assert store.as_of_ms() is None
        before = {u: store.profile(u, at) for u in ("u1", "u2")}
        items = store.item_stats(range(20))
        assert _apply(store, 1000, 2000) == "ok"
        assert store.profile("u1", at).version > before["u1"].version  # the live store moved on
        for u, profile in before.items():
            assert view.profile(u, at).same_as(profile)  # the view did not
        kept = view.item_stats(range(20))
        assert np.array_equal(kept.total, items.total)
        assert np.array_equal(kept.day_counts, items.day_counts)
        assert not np.array_equal(store.item_stats(range(20)).total, items.total)
        assert view.profile("u3", at).version == 0  # only the users asked for
        meta, live = view.meta(), store.meta()
        assert meta is not None
        assert live is not None
        assert meta.offsets == {0: 1000}
        assert live.offsets == {0: 2000}
        store.copy_to(view, ["u1"])  # a new snapshot replaces the old one whole
        assert view.profile("u2", at).version == 0
        assert view.profile("u1", at).same_as(store.profile("u1", at))
        with pytest.raises(ConfigError, match="onto itself"):
            store.copy_to(store)
        empty = OnlineFeatures(store.r, view_namespace(store.prefix[:-3], "none"), store.groups)
        with pytest.raises(StoreNotReadyError, match="no meta"):
            empty.copy_to(view)
    finally:
        view.clear()
