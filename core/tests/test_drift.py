"""Data drift: PSI and Jensen–Shannon, the three distributions, unseen shares, the verdicts — on the synthetic
world with and without its abrupt shift (the ground truth: tastes and the catalogue change on the shift day)."""

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
    cfg = WorldConfig(n_users=800, n_items=600, n_topics=10, n_events=40_000, horizon_days=100, seed=3,
                      drift=1.0 if shift_day else 0.0, shift_day=shift_day, new_item_fraction=0.3)  # fmt: skip
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
