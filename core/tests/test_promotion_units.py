"""Promotion building blocks without MLflow: canary routing, gate config, audit log, contract checks,
the cascade swap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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
