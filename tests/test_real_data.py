"""Acceptance on the real Amazon data (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json

import pytest

from replayrec.application import EvalOptions, evaluate_plugin
from replayrec.testing import run_cli

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

KEYS = ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200", "mrr", "auc", "gauc")


@pytest.mark.parametrize("plugin", ["popularity", "itemcf"])
def test_cli_evaluates_baselines_on_books_loo(books, real_settings, plugin: str) -> None:
    proc = run_cli(
        [
            "evaluate",
            "--dataset",
            "amazon-books-2014-1m",
            "--protocol",
            "loo",
            "--plugin",
            plugin,
            "--json",
            "--bootstrap",
            "200",
        ],
        state_dir=real_settings.state_dir,
        data_dir=real_settings.data_dir,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in KEYS:
        assert 0.0 < out[key] < 1.0, key
        lo, hi = out["ci"][key]
        assert lo <= out[key] <= hi
    assert out["n_users"] == 38_234
    # the baselines are ordered as expected: co-consumption beats popularity on the next-item task
    if plugin == "itemcf":
        assert out["ndcg@10"] > 0.03
    else:
        assert out["ndcg@10"] < 0.02


def test_itemcf_beats_published_bpr_and_lightgcn_on_kgat(kgat, real_settings) -> None:
    res = evaluate_plugin(real_settings, kgat, "itemcf", opts=EvalOptions(protocol="given", n_boot=0))
    assert res.meta["history_len"] is None, "the given protocol uses the whole training history"
    assert res.n_users == 70_591  # 88 users have an empty test list
    assert res.metrics["recall@20"] >= 0.14, res.metrics
    assert res.metrics["ndcg@20"] >= 0.0736, res.metrics
