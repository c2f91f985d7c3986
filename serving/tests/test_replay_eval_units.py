"""The replay evaluation's bookkeeping without a system: which evaluated events may share one wait, the paired
ratio's interval, the result's arithmetic; and A/B arms that take no traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from replayrec.bus import Schedule
from replayrec.evaluation import paired_ratio
from replayrec_serving import Experiment
from replayrec_serving._replay_eval import DAY_S, ReplayEvalRequest, _finite, _groups, _Plan

T0 = 1_400_000_000 - 1_400_000_000 % DAY_S  # a UTC midnight


def _plan(users: list[str], times: list[float], evaluated: list[int]) -> _Plan:
    n = len(users)
    sched = Schedule(
        dataset="t", seq=np.arange(n, dtype=np.int64), times=np.array(times, dtype=np.float64), users=users,
        items=[f"i{j}" for j in range(n)], actions=["view"] * n, ratings=[None] * n,
        partitions=np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    return _Plan(sched, np.array(evaluated, dtype=np.int64), sorted(set(users)), len(set(users)))


def test_a_group_never_holds_an_event_of_its_own_user_between_its_start_and_itself() -> None:
    users = ["a", "b", "x", "a", "c", "b", "x", "d"]
    times = [T0 + 10.0 * i for i in range(len(users))]
    plan = _plan(users, times, [0, 1, 3, 4, 5, 7])
    groups = _groups(plan, group_events=1000)
    # a@3 has a@0 in its group's span: a new group; b@5 has b@1 before 3: fine; d@7 fine
    assert groups == [[0, 1], [3, 4, 5, 7]]
    for g in groups:
        for e in g:
            between = range(g[0], e)
            assert all(plan.schedule.users[i] != plan.schedule.users[e] for i in between)


def test_groups_end_at_midnight_and_at_the_size_bound() -> None:
    users = ["a", "b", "c", "d", "e"]
    times = [T0 + 100, T0 + 200, T0 + DAY_S + 5, T0 + DAY_S + 6, T0 + DAY_S + 7]
    assert _groups(_plan(users, times, [0, 1, 2, 3, 4]), 1000) == [[0, 1], [2, 3, 4]]
    assert _groups(_plan(users, times, [0, 1, 2, 3, 4]), 1) == [[0, 1], [2, 3], [4]]


def test_the_paired_ratio_is_a_ratio_of_sums_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3, 400).astype(np.float64)
    better = base + rng.integers(0, 2, 400)
    point, lo, hi = paired_ratio(better, base, n_boot=500, seed=1)
    assert point == pytest.approx(better.sum() / base.sum())
    assert lo < point < hi
    assert lo > 1.0  # every user at least as good: the whole interval above 1
    assert paired_ratio(better, base, n_boot=500, seed=1) == (point, lo, hi)  # seeded
    assert np.isnan(paired_ratio(base, np.zeros(400))[0])
    with pytest.raises(ValueError, match="same users"):
        paired_ratio(base, base[:10])


def test_the_request_is_checked() -> None:
    with pytest.raises(Exception, match="--days"):
        ReplayEvalRequest(days=0).check()
    with pytest.raises(Exception, match="at least 1"):
        ReplayEvalRequest(users=0).check()


def test_arms_without_weight_take_no_traffic_but_can_be_named() -> None:
    layout = {"recall": {"k": 50, "channels": [{"type": "popularity"}]}}
    arms = [
        {"name": "a", "weight": 0, "cascade": layout, "features": "nightly"},
        {"name": "b", "weight": 1, "cascade": layout},
    ]
    exp = Experiment.parse({"name": "e", "salt": "s", "arms": arms})
    assert {exp.arm_for(f"u{i}") for i in range(200)} == {"b"}
    idle = Experiment.parse(
        {"name": "e", "salt": "s", "arms": [{"name": "a", "weight": 0, "cascade": layout}]}
    )
    assert idle.arm_for("u1") is None  # nobody routed: prod serves
    with pytest.raises(Exception, match="features"):
        Experiment.parse(
            {"name": "e", "salt": "s", "arms": [{"name": "a", "cascade": layout, "features": "bad name!"}]}
        )


def test_the_result_holds_no_nan_for_json() -> None:
    got = _finite({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}, "e": "x"})
    assert got == {"a": None, "b": [1.0, None], "c": {"d": 2}, "e": "x"}


def test_the_live_models_train_behind_the_serving_cascades_own_recall(tmp_path: Path) -> None:
    """DIN and RankNet are trained behind the recall they are served behind: the shipped cascade's three
    channels in their order (RankNet's channel features are named by position), or a single stage as is."""
    from replayrec_serving import default_serving_cascade
    from replayrec_serving._system import serving_upstream

    up = serving_upstream(default_serving_cascade())
    channels = up["din"]["recall"]["channels"]
    assert [c["type"] for c in channels] == ["lightgcn", "itemcf", "popularity"]
    assert channels[0]["model"] == "lightgcn@prod"
    assert up["ranknet"]["recall"] == up["din"]["recall"]
    assert up["ranknet"]["rank"] == {"type": "din", "model": "din@prod"}
    one = tmp_path / "one.yaml"
    one.write_text(
        "recall: {k: 50, channels: [{type: lightgcn, model: lightgcn@prod, quota: 50}]}\n"
        "rank: {type: din, model: din@prod, k: 20}\nrerank: {type: ranknet, model: ranknet@prod, k: 10}\n"
    )
    assert serving_upstream(one)["din"]["recall"] == {"type": "lightgcn", "model": "lightgcn@prod"}
