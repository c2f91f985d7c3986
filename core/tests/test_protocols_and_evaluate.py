"""Protocol splits never leak the future; the evaluator's two paths agree; reports are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from replayrec.config import Settings
from replayrec.data import WorldConfig, ensure_prepared, load_dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import bootstrap_ci, build_split, evaluate, write_report
from replayrec.stages import StageConfig, StageContext
from replayrec.testing import FixedRecall


@pytest.fixture
def synth(settings: Settings):
    world = WorldConfig(n_users=300, n_items=200, n_events=12_000, seed=5, horizon_days=60)
    ensure_prepared("synthetic", settings, world=world)
    return load_dataset("synthetic", settings)


def test_loo_split_holds_out_the_last_two_events(synth) -> None:
    split = build_split(synth, "loo", history_len=50)
    seqs = synth.interactions().sequences
    fit_pairs = set(zip(split.fit.user.tolist(), split.fit.item.tolist(), strict=True))
    for r in range(len(split.test)):
        u = int(split.test.users[r])
        items, times = seqs.of(u)
        assert split.test.targets(r).tolist() == [items[-1]]
        assert split.valid is not None
        assert split.valid.targets(r).tolist() == [items[-2]]
        hist, _ = split.test.history(r)
        assert hist.tolist() == items[:-1].tolist()  # everything before the target, nothing after
        assert split.test.times[r] == times[-1]
        assert (u, int(items[-1])) not in fit_pairs
        assert (u, int(items[-2])) not in fit_pairs
    assert len(split.fit) == len(synth.events) - 2 * len(split.test)
    assert np.all(np.diff(split.fit.timestamp) >= 0), "fitted events stay in time order"


def test_temporal_split_fits_only_on_the_past(synth) -> None:
    split = build_split(synth, "temporal", holdout=0.2)
    cutoff = int(split.test.times[0])
    assert split.fit.timestamp.max() < cutoff
    assert np.all(split.test.times == cutoff)
    assert np.all(split.test.hist_times < cutoff)
    ev = synth.events
    later = ev[ev["timestamp"] >= cutoff]
    for r in range(0, len(split.test), 17):
        u = int(split.test.users[r])
        assert set(split.test.targets(r).tolist()) <= set(later[later["user"] == u]["item"].tolist())


def test_given_protocol_needs_a_split(synth) -> None:
    with pytest.raises(ConfigError, match="no given train/test split"):
        build_split(synth, "given")
    with pytest.raises(ConfigError, match="unknown protocol"):
        build_split(synth, "random")


def test_full_ranking_and_list_paths_agree(synth) -> None:
    split = build_split(synth, "loo")
    stage = FixedRecall(StageConfig(), StageContext(synth.catalog, split.fit, seed=1))
    full = evaluate(stage, split.test, n_items=synth.n_items, ks=(5, 20), n_boot=0)

    class ListOnly(FixedRecall):
        supports_full_ranking = False

    lists = evaluate(
        ListOnly(StageConfig(), StageContext(synth.catalog, split.fit, seed=1)),
        split.test,
        n_items=synth.n_items,
        ks=(5, 20),
        n_boot=0,
    )
    for key in ("recall@5", "ndcg@5", "hr@20", "ndcg@20"):
        np.testing.assert_allclose(full.per_user[key], lists.per_user[key], atol=1e-12, err_msg=key)
    assert np.isfinite(full.metrics["auc"])
    assert full.auc_scope == "catalogue"
    assert lists.auc_scope.startswith("candidate list")
    # within a list of 20, a target at 0-based rank r beats 19 - r of the 19 other items; no target: NaN
    mrr = lists.per_user["mrr"]
    hit = mrr > 0
    np.testing.assert_allclose(lists.per_user["auc"][hit], 1 - (1 / mrr[hit] - 1) / 19, atol=1e-12)
    assert np.isnan(lists.per_user["auc"][~hit]).all()
    assert hit.any()
    assert (~hit).any()


def test_history_masking_changes_the_candidates(synth) -> None:
    split_m = build_split(synth, "loo", mask_history=True)
    split_u = build_split(synth, "loo", mask_history=False)
    stage = FixedRecall(StageConfig(), StageContext(synth.catalog, split_m.fit, seed=2))
    masked = evaluate(stage, split_m.test, n_items=synth.n_items, ks=(10,), n_boot=0)
    unmasked = evaluate(stage, split_u.test, n_items=synth.n_items, ks=(10,), n_boot=0)
    # with a fixed score vector, removing consumed items can only move targets up
    assert masked.metrics["mrr"] >= unmasked.metrics["mrr"]
    assert masked.metrics["mrr"] > unmasked.metrics["mrr"] or masked.metrics["hr@10"] > 0


def test_bootstrap_interval_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    vals = {"m": rng.random(2000), "w": rng.random(2000)}
    ci = bootstrap_ci(vals, {"w": rng.integers(1, 5, 2000).astype(float)}, n_boot=300, seed=1)
    lo, hi = ci["m"]
    assert lo < vals["m"].mean() < hi
    assert hi - lo < 0.05
    assert bootstrap_ci(vals, n_boot=300, seed=1) == bootstrap_ci(vals, n_boot=300, seed=1)


def test_reports_are_written(tmp_path: Path, synth) -> None:
    split = build_split(synth, "loo")
    stage = FixedRecall(StageConfig(), StageContext(synth.catalog, split.fit, seed=1))
    res = evaluate(stage, split.test, n_items=synth.n_items, ks=(10, 20), n_boot=50).to_dict()
    paths = write_report({"fixed": res}, tmp_path, "r", title="t")
    assert json.loads(paths["json"].read_text())["fixed"]["ndcg@10"] == res["ndcg@10"]
    assert "| fixed |" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
