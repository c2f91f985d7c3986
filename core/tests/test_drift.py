"""Data drift: PSI and Jensen–Shannon, the three distributions, unseen shares, the verdicts — on the
synthetic world with and without its abrupt shift (the ground truth: tastes and the catalogue change on the
shift day); the dataset as of a time and over a window (what a retraining sees)."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.data import WorldConfig, generate_world
from replayrec.errors import ConfigError, DataError
from replayrec.monitoring import (
    DriftThresholds,
    Window,
    compute_drift,
    jensen_shannon,
    load_monitor_config,
    psi,
)

DAY = 86_400


def test_divergences_of_known_histograms() -> None:
    same = np.array([10.0, 20.0, 30.0])
    assert psi(same, same * 3) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(same, same / 7) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    # PSI by hand: sum((q - p) * ln(q / p)) for p = (.5, .5), q = (.9, .1)
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi(np.array([5.0, 5.0]), np.array([9.0, 1.0])) == pytest.approx(expected, rel=1e-6)
    # an empty bin on one side stays finite (smoothed)
    assert np.isfinite(psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    with pytest.raises(DataError, match="empty distribution"):
        psi(np.zeros(3), same)


def _window(ev: object, mask: np.ndarray) -> Window:
    frame = ev  # a pandas frame of user, item, timestamp
    return Window(
        frame["user"].to_numpy()[mask],  # type: ignore[index]
        frame["item"].to_numpy()[mask],  # type: ignore[index]
        frame["timestamp"].to_numpy()[mask],  # type: ignore[index]
    )


def _split(shift_day: int | None) -> tuple[Window, Window, Window, np.ndarray, int]:
    cfg = WorldConfig(
        n_users=800, n_items=600, n_topics=10, n_events=40_000, horizon_days=100, seed=3,
        drift=1.0 if shift_day else 0.0, shift_day=shift_day, new_item_fraction=0.3,
    )  # fmt: skip
    world = generate_world(cfg)
    ev = world.events
    t = ev["timestamp"].to_numpy()
    at = cfg.start + 80 * DAY
    train = _window(ev, t < at)
    stable = _window(ev, (t >= at) & (t < at + 5 * DAY))
    late = _window(ev, t >= cfg.start + 90 * DAY)
    return train, stable, late, world.item_topic, cfg.n_users


def test_no_shift_no_verdict_and_an_abrupt_shift_is_caught() -> None:
    train, stable, late, groups, n_users = _split(None)
    for window in (stable, late):  # 0-5 and 10-20 days after the training window: new items keep coming
        calm = compute_drift(train, window, groups, n_users)
        assert calm.alarms == [], calm.to_dict()
        assert calm.scores["item_group"]["psi"] < 0.05
    train_s, before, after, groups_s, _ = _split(86)
    pre = compute_drift(train_s, before, groups_s, n_users)
    assert pre.alarms == [], pre.to_dict()  # days 80-85: before the shift
    post = compute_drift(train_s, after, groups_s, n_users)
    assert post.scores["item_popularity"]["psi"] > 0.2
    assert post.scores["item_popularity"]["js"] > 5 * pre.scores["item_popularity"]["js"]
    assert post.unseen["item"] > 0.2  # the new season's items, never in the training window
    assert any(a.startswith("item_popularity psi") for a in post.alarms)
    assert any(a.startswith("unseen item share") for a in post.alarms)
    # every user's taste moved, but to a draw from the same prior: the catalogue-wide group mix did not
    assert post.scores["item_group"]["psi"] < 0.1
    doc = post.to_dict()
    assert doc["drifted"] is True
    assert set(doc["scores"]) == {"item_group", "item_popularity", "user_activity"}


def test_a_category_mix_shift_moves_the_group_scores() -> None:
    train, stable, _, groups, n_users = _split(None)
    few_topics = np.isin(groups[stable.items], [0, 1, 2])
    skewed = Window(stable.users[few_topics], stable.items[few_topics], stable.times[few_topics])
    report = compute_drift(train, skewed, groups, n_users, DriftThresholds(min_events=100))
    assert report.scores["item_group"]["psi"] > 1.0
    assert report.scores["item_group"]["js"] > 0.3
    assert any(a.startswith("item_group psi") for a in report.alarms)
    assert any(a.startswith("item_group js") for a in report.alarms)


def test_too_few_live_events_is_no_verdict() -> None:
    train, _, after, groups, n_users = _split(86)
    few = Window(after.users[:50], after.items[:50], after.times[:50])
    report = compute_drift(train, few, groups, n_users, DriftThresholds(min_events=100))
    assert report.scores["item_popularity"]["psi"] > 0.2  # the numbers are there ...
    assert report.alarms == []  # ... the verdict waits for enough events
    assert report.to_dict()["enough_events"] is False


def test_unseen_users_and_activity_classes() -> None:
    # the history (first half) holds user 0 three times and user 1 once; the reference, user 3 four times
    train = Window(np.array([0, 0, 0, 1, 3, 3, 3, 3]), np.array([0, 1, 2, 0, 1, 1, 2, 2]), np.arange(8))
    live = Window(np.array([2, 2, 1, 0]), np.array([0, 1, 0, 2]), np.arange(8, 12))
    report = compute_drift(train, live, np.array([0, 0, 1]), 4, DriftThresholds(min_events=1))
    assert report.unseen == {"item": 0.0, "user": 0.5}
    assert report.events == {"train": 8, "live": 4, "reference": 4}
    # live events by the history's activity of their user: new (0) twice, one event (1) once, three once;
    # the reference's user 3 has no history: all of it is "new"
    assert report.histograms["user_activity"]["live"][:3] == [0.5, 0.25, 0.25]
    assert report.histograms["user_activity"]["train"][:3] == [1.0, 0.0, 0.0]


def test_window_and_config_errors(tmp_path: object) -> None:
    with pytest.raises(DataError, match="as many users as items"):
        Window(np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64))
    empty = Window(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    with pytest.raises(DataError, match="training window holds no event"):
        compute_drift(empty, empty, np.zeros(3, dtype=np.int64), 2)
    path = tmp_path / "monitor.yaml"  # type: ignore[operator]
    path.write_text("drift: {psi: -1}\n")
    with pytest.raises(ConfigError, match="psi"):
        load_monitor_config(path)
    path.write_text("window_event: 10\n")
    with pytest.raises(ConfigError, match="window_event"):
        load_monitor_config(path)
    assert load_monitor_config(None, window_events=123).window_events == 123


def test_the_shifted_world_releases_its_season_and_switches_tastes() -> None:
    cfg = WorldConfig(n_users=300, n_items=400, n_topics=8, n_events=20_000, horizon_days=40, seed=5,
                      drift=1.0, shift_day=30, new_item_fraction=0.3, shift_boost=4.0)  # fmt: skip
    world = generate_world(cfg)
    at = cfg.start + 30 * DAY
    new = world.item_release > cfg.start
    assert set(world.item_release[new].tolist()) == {at}  # every new item appears on the day of the shift
    ev = world.events
    t, items = ev["timestamp"].to_numpy(), ev["item"].to_numpy()
    assert not new[items[t < at]].any()  # never consumed before its release
    assert new[items[t >= at]].mean() > 0.4  # boosted: the season's hits take a large share after it
    # sessions follow the first taste before the shift, the second after it (drift 1.0: entirely)
    early, late = ev[t < at].iloc[:2000], ev[t >= at].iloc[:2000]
    for frame, taste in ((early, world.user_taste), (late, world.user_taste_end)):
        mass = taste[frame["user"].to_numpy(), frame["intent"].to_numpy()]
        assert mass.mean() > 0.3
    assert world.taste_at(0, at - 1).tolist() == world.user_taste[0].tolist()
    assert world.taste_at(0, at).tolist() == world.user_taste_end[0].tolist()
    with pytest.raises(ValueError, match="inside the horizon"):
        WorldConfig(horizon_days=10, shift_day=10)


def test_a_dataset_as_of_a_time_and_over_a_window(tmp_path: object) -> None:
    from pathlib import Path

    from replayrec.config import Settings
    from replayrec.data import ensure_prepared, load_dataset

    settings = Settings(state_dir=Path(str(tmp_path)) / "state")
    world = WorldConfig(n_users=80, n_items=60, n_topics=4, n_events=2000, horizon_days=20, seed=2)
    ensure_prepared("synthetic", settings, world=world)
    ds = load_dataset("synthetic", settings)
    t = ds.events["timestamp"].to_numpy()
    mid = int(np.median(t))
    past = ds.as_of(mid)
    assert (past.events["timestamp"] < mid).all()
    assert len(past.events) == int((t < mid).sum())
    assert (past.n_items, past.n_users) == (ds.n_items, ds.n_users)  # the same catalogue and users
    recent = ds.as_of(mid, window_s=2 * DAY)
    assert recent.events["timestamp"].min() >= mid - 2 * DAY
    assert recent.manifest["as_of"] == mid
    assert recent.manifest["window_s"] == 2 * DAY
    assert len(ds.as_of(None, window_s=DAY).events) == int((t >= t.max() + 1 - DAY).sum())
    with pytest.raises(DataError, match="no event in"):
        ds.as_of(int(t.min()))
    with pytest.raises(DataError, match="must be positive"):
        ds.as_of(mid, window_s=0)
