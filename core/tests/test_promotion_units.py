"""Promotion building blocks without MLflow: canary routing, gate config, audit log, contract checks,
the cascade swap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from replayrec.cascade import input_cascade, trained_cascade
from replayrec.conformance import run_checks
from replayrec.errors import ConfigError, DataError
from replayrec.promotion import AuditLog, Check, Decision, GateConfig, canary_bucket, load_gates
from replayrec.promotion._canary import _swap
from replayrec.stages import Candidate, Request, StageConfig
from replayrec.testing import FixedRecall, tiny_world


def test_canary_routing_is_deterministic_and_close_to_the_fraction() -> None:
    users = np.arange(20_000)
    a = np.array([canary_bucket(int(u), "s1") for u in users])
    b = np.array([canary_bucket(int(u), "s1") for u in users])
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a < 1)).all()
    assert abs((a < 0.1).mean() - 0.1) < 0.01
    other = np.array([canary_bucket(int(u), "s2") for u in users])
    assert not np.array_equal(a < 0.1, other < 0.1), "a new salt reshuffles the users"


def test_gate_config_defaults_file_and_errors(tmp_path: Path) -> None:
    assert load_gates(None) == GateConfig()
    f = tmp_path / "g.yaml"
    f.write_text("canary: {fraction: 0.25}\nevaluate: {baseline: popularity}\n")
    g = load_gates(f)
    assert g.canary.fraction == 0.25
    assert g.evaluate.baseline == "popularity"
    assert g.stage == GateConfig().stage
    f.write_text("canary: {fraction: 1.5}\n")
    with pytest.raises(ConfigError, match=r"canary\.fraction"):
        load_gates(f)
    f.write_text("evaluat: {}\n")
    with pytest.raises(ConfigError, match="evaluat: unknown key"):
        load_gates(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_gates(tmp_path / "none.yaml")


def test_gate_baseline_with_options_and_input_order(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("evaluate: {baseline: {type: popularity, mode: recent, window_days: 30}}\n")
    g = load_gates(f).evaluate
    assert g.baseline_spec() == ("popularity", {"mode": "recent", "window_days": 30})
    assert g.input_order, "rankers are compared with their input by default"
    assert g.input_tolerance == 0.0
    assert GateConfig().evaluate.baseline_spec() is None
    named = load_gates(None).evaluate.model_copy(update={"baseline": "itemcf"})
    assert named.baseline_spec() == ("itemcf", {})
    f.write_text("evaluate: {baseline: {mode: recent}}\n")
    with pytest.raises(ConfigError, match="needs `type: <recall plugin>`"):
        load_gates(f)
    f.write_text("evaluate: {input_tolerance: 1.5}\n")
    with pytest.raises(ConfigError, match="input_tolerance"):
        load_gates(f)


def test_input_cascade_is_the_models_upstream_passing_through(tmp_path: Path) -> None:
    """What a trained ranker is compared with: its own upstream stages at its depth, itself replaced by a
    pass-through; a reranker's input is the recall and the rank model it was trained behind."""
    rank_dir, rerank_dir = tmp_path / "din", tmp_path / "ranknet"
    recall = {"type": "lightgcn", "model": "/m/lightgcn"}
    rank_dir.mkdir()
    (rank_dir / "upstream.json").write_text(json.dumps({"recall": recall, "recall_k": 120}))
    rerank_dir.mkdir()
    up = {"recall": recall, "recall_k": 120, "rank": {"type": "din", "model": "/m/din"}, "rank_k": 40}
    (rerank_dir / "upstream.json").write_text(json.dumps(up))
    rank_in = input_cascade("rank", rank_dir)
    assert rank_in.recall.k == 120
    assert [c.type for c in rank_in.recall.channels] == ["lightgcn"]
    assert (rank_in.rank.type, rank_in.rank.k, rank_in.rerank.type) == ("passthrough", 120, "passthrough")
    rerank_in = input_cascade("rerank", rerank_dir)
    assert (rerank_in.rank.type, rerank_in.rank.model, rerank_in.rank.k) == ("din", "/m/din", 40)
    assert (rerank_in.rerank.type, rerank_in.rerank.k) == ("passthrough", 40)
    assert trained_cascade("ranknet", "rerank", rerank_dir, {}).rank == rerank_in.rank, "the same input"
    with pytest.raises(ConfigError, match="not a trained rank model"):
        input_cascade("rank", tmp_path)


def test_decision_reason_names_every_failed_check() -> None:
    ok, bad = Check("a", True, "fine"), Check("b", False, "too slow")
    d = Decision.from_checks("canary", "x", "3", [ok, bad])
    assert not d.passed
    assert d.reason == "b: too slow"
    assert Decision.from_checks("stage", "x", "3", [ok]).reason == "all 1 checks passed"


def test_audit_log_only_appends(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "promotion.jsonl")
    assert log.read() == []
    log.append({"plugin": "a", "step": "evaluate", "outcome": "failed"})
    first = log.path.read_bytes()
    log.append({"plugin": "b", "step": "prod", "outcome": "passed"})
    assert log.path.read_bytes().startswith(first), "earlier records are never rewritten"
    assert [r["plugin"] for r in log.read()] == ["a", "b"]
    assert [r["step"] for r in log.read("b")] == ["prod"]
    assert {"time", "actor"} <= set(log.read()[0])
    with log.path.open("a") as fh:
        fh.write("not json\n")
    with pytest.raises(DataError, match=r"promotion\.jsonl:3 is not a JSON record"):
        log.read()


class _Unsorted(FixedRecall):
    """Breaks the recall contract: returns its candidates in ascending score order."""

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        return list(reversed(super().retrieve(request, k)))


def test_contract_checks_pass_a_good_stage_and_name_a_broken_one() -> None:
    world = tiny_world()
    good = run_checks("recall", lambda ctx: FixedRecall(StageConfig(), ctx), world)
    assert good
    assert {r.outcome for r in good} == {"passed"}
    assert any(r.check.startswith("recall.length_sorted_unique[k=") for r in good)
    bad = run_checks("recall", lambda ctx: _Unsorted(StageConfig(), ctx), world)
    failed = {r.check.split("[")[0] for r in bad if r.outcome == "failed"}
    assert "recall.length_sorted_unique" in failed
    assert "recall.batch_matches_single_requests" not in failed


def test_cascade_swap_replaces_only_the_plugins_models() -> None:
    raw = {
        "recall": {
            "k": 200,
            "channels": [{"type": "lightgcn", "model": "lightgcn@prod"}, {"type": "itemcf"}],
        },
        "rank": {"type": "din", "model": "din@prod", "k": 50},
        "rerank": {"type": "ranknet", "model": "ranknet@prod", "k": 10},
    }
    out = _swap(raw, "din", "/models/din-v7")
    assert out["rank"]["model"] == "/models/din-v7"
    assert out["recall"]["channels"][0]["model"] == "lightgcn@prod"
    assert out["rerank"]["model"] == "ranknet@prod"
    assert json.dumps(raw).count("/models") == 0, "the input is not modified"
