"""The ablation's building blocks: the request-time probe and the spec's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from replayrec.application import DEFAULT_ABLATION, AblationSpec, EvalOptions, requests_after_history
from replayrec.config import Settings
from replayrec.data import WorldConfig, ensure_prepared, load_dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet

DAY = 86_400


def test_requests_move_to_a_day_after_the_newest_history_event() -> None:
    ev = EvalSet(
        users=np.array([0, 1, 2]),
        times=np.array([50, 60, 70]) * DAY,
        hist_ptr=np.array([0, 2, 2, 5]),
        hist_items=np.array([1, 2, 3, 4, 5]),
        hist_times=np.array([3, 9, 20, 41, 30]) * DAY,
        tgt_ptr=np.array([0, 1, 2, 3]),
        tgt_items=np.array([7, 8, 9]),
    )
    moved = requests_after_history(ev)
    assert moved.times.tolist() == [10 * DAY, 60 * DAY, 42 * DAY], "user 1 has no history: its time stays"
    assert moved.hist_items.tolist() == ev.hist_items.tolist()
    assert moved.tgt_items.tolist() == ev.tgt_items.tolist()
    assert ev.times.tolist() == [50 * DAY, 60 * DAY, 70 * DAY], "the input is not changed"


def test_the_probe_is_applied_and_recorded_and_an_unknown_one_refused(settings: Settings) -> None:
    from replayrec.application import evaluate_plugin

    ensure_prepared("synthetic", settings, world=WorldConfig(n_users=200, n_items=100, n_events=6000, seed=3))
    ds = load_dataset("synthetic", settings)
    opts = EvalOptions(n_boot=0, ks=(10,))
    res = evaluate_plugin(settings, ds, "popularity", {"mode": "recent", "window_days": 7}, opts=opts)
    probed = evaluate_plugin(
        settings,
        ds,
        "popularity",
        {"mode": "recent", "window_days": 7},
        opts=EvalOptions(n_boot=0, ks=(10,), request_time="after_history"),
    )
    assert res.meta["request_time"] == "protocol"
    assert probed.meta["request_time"] == "after_history"
    assert probed.n_users == res.n_users
    # recent popularity as of another moment is another list: the request time reached the stage
    assert not np.array_equal(probed.per_user["ndcg@10"], res.per_user["ndcg@10"])
    with pytest.raises(ConfigError, match="unknown request time 'tomorrow'"):
        evaluate_plugin(settings, ds, "popularity", opts=EvalOptions(request_time="tomorrow"))


def test_the_default_spec_names_ranknets_groups_and_bad_specs_are_refused(tmp_path: Path) -> None:
    spec = AblationSpec.read(DEFAULT_ABLATION)
    assert spec.rerank == "ranknet"
    assert spec.groups == {
        "time": ["pop_recent", "age", "last_seen"],
        "similarity": ["sim_last", "sim_recent"],
        "upstream": ["rank_score", "recall", "position"],
    }
    assert list(spec.probes.values()) == [{"request_time": "after_history"}]
    bad = tmp_path / "bad.yaml"
    for text, needle in (
        ("rerank: ranknet\n", "lacks train_key, serve_key, groups"),
        ("rerank: r\ntrain_key: a\nserve_key: b\ngroups: {x: []}\n", "non-empty lists of features"),
        (
            "rerank: r\ntrain_key: a\nserve_key: b\ngroups: {x: [f]}\nprobes: {p: {n_boot: 3}}\n",
            "probe 'p' sets n_boot",
        ),
        ("[1, 2", "not valid YAML"),
    ):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            AblationSpec.read(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        AblationSpec.read(tmp_path / "absent.yaml")
