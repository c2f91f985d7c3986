"""The promotion pipeline end to end on a synthetic world: real LightGCN training, a real MLflow registry
(sqlite), the CLI as a user runs it, and fault injection at *evaluate* and *canary*."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from replayrec.testing import run_cli

pytestmark = pytest.mark.slow

Dirs = dict[str, Path]
TRAIN = ["--epochs", "6", "--set", "eval_every=3", "--set", "dim=16", "--set", "batch_size=1024"]
WORSE = ["--epochs", "1", "--set", "dim=4", "--set", "lr=0.0001", "--set", "batch_size=1024"]


def _registry(dirs: Dirs) -> dict[str, dict]:
    proc = run_cli(["registry", "list", "--json"], **dirs)
    assert proc.returncode == 0, proc.stderr
    return {v["version"]: v for v in json.loads(proc.stdout)["lightgcn"]}


def _prod(dirs: Dirs) -> str | None:
    return next((v for v, info in _registry(dirs).items() if "prod" in info["aliases"]), None)


def _audit(dirs: Dirs) -> list[dict]:
    proc = run_cli(["registry", "audit", "--json"], **dirs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dirs, str]:
    """A state directory where ``pipeline run lightgcn`` trained v1 and promoted it to prod."""
    root = tmp_path_factory.mktemp("promotion")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs)
    assert prep.returncode == 0, prep.stderr
    gates = root / "gates.yaml"  # a larger canary slice: the synthetic test split has 590 users
    gates.write_text("canary: {fraction: 0.3, p99_budget_ms: 15}\nevaluate: {baseline: popularity}\n")
    proc = run_cli(["pipeline", "run", "lightgcn", *TRAIN, "--gates", str(gates)], **dirs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dirs, str(gates)


def test_first_run_goes_through_every_step_and_sets_prod(promoted) -> None:
    dirs, _ = promoted
    v1 = _registry(dirs)["1"]
    assert v1["aliases"] == ["prod"]
    assert {v1["gates"][s] for s in ("train", "evaluate", "stage", "canary", "prod")} == {"passed"}
    assert v1["eval"]["ndcg_at_10"] > 0.005
    assert len(v1["git_commit"]) >= 40 or v1["git_commit"] == "unknown"
    steps = [r["step"] for r in _audit(dirs) if r["version"] == "1"]
    assert steps[:5] == ["train", "evaluate", "stage", "canary", "prod"]


def test_versions_carry_provenance_tags(promoted) -> None:
    import mlflow

    dirs, _ = promoted
    client = mlflow.MlflowClient(f"sqlite:///{dirs['state_dir'] / 'mlflow.db'}")
    mv = client.get_model_version("replayrec-lightgcn", "1")
    for key in ("plugin_version", "core_api", "config", "dataset", "dataset_fingerprint", "git_commit"):
        assert mv.tags.get(key), key
    assert json.loads(mv.tags["config"])["dim"] == 16
    assert len(mv.tags["dataset_fingerprint"]) == 16
    assert float(mv.tags["eval_hr_at_10"]) > 0
    assert mv.tags["gate.stage.reason"] == "all 3 checks passed"


def test_a_worse_configuration_is_stopped_and_prod_stays(promoted) -> None:
    dirs, gates = promoted
    proc = run_cli(["pipeline", "run", "lightgcn", *WORSE, "--gates", gates, "--json"], **dirs)
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stopped_at"] == "evaluate"
    assert not out["promoted"]
    failed = [c for c in out["decisions"][0]["checks"] if not c["passed"]]
    assert any("vs prod v1" in c["name"] for c in failed)
    assert all(c["numbers"]["ci"][1] < -0.02 for c in failed if "vs prod" in c["name"])
    assert _prod(dirs) == "1"


def _copy(dirs: Dirs, tmp_path: Path, randomise: bool) -> Path:
    src = Path(_registry(dirs)["1"]["artifact"])
    dst = tmp_path / ("random" if randomise else "copy")
    shutil.copytree(src, dst)
    if randomise:
        state = load_file(dst / "model.safetensors")
        rng = np.random.default_rng(0)
        noise = {k: (rng.standard_normal(v.shape) * 0.1).astype(v.dtype) for k, v in state.items()}
        save_file(noise, dst / "model.safetensors")
    return dst


def test_random_weights_are_rejected_at_evaluate(promoted, tmp_path: Path) -> None:
    dirs, gates = promoted
    proc = run_cli(
        [
            "pipeline",
            "run",
            "lightgcn",
            "--model",
            str(_copy(dirs, tmp_path, True)),
            "--gates",
            gates,
            "--json",
        ],
        **dirs,
    )
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stopped_at"] == "evaluate"
    reasons = out["decisions"][0]["reason"]
    assert "vs baseline popularity" in reasons
    assert "vs prod v1" in reasons
    assert _prod(dirs) == "1"
    assert _registry(dirs)[out["version"]]["gates"]["evaluate"] == "failed"


@pytest.mark.parametrize(
    ("flag", "value", "check"),
    [("--inject-canary-delay-ms", "20", "latency p99"), ("--inject-canary-error-rate", "0.5", "error rate")],
)
def test_slow_or_erroring_candidate_is_rolled_back_at_canary(
    promoted, tmp_path: Path, flag: str, value: str, check: str
) -> None:
    """The same weights as prod (good offline) served slowly or with errors: evaluate and stage pass, the
    canary fails, its alias is rolled back, prod does not move."""
    dirs, gates = promoted
    model = str(_copy(dirs, tmp_path, False))
    proc = run_cli(
        ["pipeline", "run", "lightgcn", "--model", model, "--gates", gates, flag, value, "--json"], **dirs
    )
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert [d["step"] for d in out["decisions"]] == ["evaluate", "stage", "canary"]
    assert [d["passed"] for d in out["decisions"]] == [True, True, False]
    canary = out["decisions"][2]
    assert any(check in c["name"] and not c["passed"] for c in canary["checks"])
    assert canary["numbers"]["prod_version"] == "1"
    info = _registry(dirs)[out["version"]]
    assert info["gates"]["canary"] == "rolled_back"
    assert "canary" not in info["aliases"]
    assert _prod(dirs) == "1"


def test_manual_promote_and_rollback_are_audited(promoted, tmp_path: Path) -> None:
    dirs, _ = promoted
    reg = run_cli(["registry", "register", str(_copy(dirs, tmp_path, False))], **dirs)
    assert reg.returncode == 0, reg.stderr
    new = reg.stdout.strip().rsplit("v", 1)[1]
    no_reason = run_cli(["promote", "lightgcn", "--version", new, "--to", "prod"], **dirs)
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
    proc = run_cli(["promote", "lightgcn", "--version", new, "--to", "prod", "--reason", "hotfix"], **dirs)
    assert proc.returncode == 0, proc.stderr
    versions = _registry(dirs)
    assert versions[new]["aliases"] == ["prod"]
    assert "prod-previous" in versions["1"]["aliases"]
    proc = run_cli(["rollback", "lightgcn", "--reason", "drill"], **dirs)
    assert proc.returncode == 0, proc.stderr
    assert _prod(dirs) == "1"
    assert "prod-previous" in _registry(dirs)[new]["aliases"]
    records = _audit(dirs)
    assert [r["outcome"] for r in records[-2:]] == ["manual", "rolled_back"]
    assert "drill" in records[-1]["reason"]
    bad = run_cli(["promote", "lightgcn", "--version", "999", "--to", "prod", "--reason", "x"], **dirs)
    assert bad.returncode == 2
    assert "replayrec-lightgcn has no version '999'" in bad.stderr
    assert _prod(dirs) == "1"


def test_ab_compare_reports_the_difference_with_cis(promoted, tmp_path: Path) -> None:
    dirs, _ = promoted
    a, b = tmp_path / "lightgcn.yaml", tmp_path / "itemcf.yaml"
    tail = "rank: {type: passthrough, k: 10}\nrerank: {type: passthrough, k: 10}\n"
    a.write_text("recall: {k: 10, channels: [{type: lightgcn, model: lightgcn@prod}]}\n" + tail)
    b.write_text("recall: {k: 10, channels: [{type: itemcf}]}\n" + tail)
    proc = run_cli(
        ["ab", "compare", "--arm", str(a), "--arm", str(b), "--bootstrap", "200", "--json"], **dirs
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["users"] == 590
    assert set(out["b_over_a"]) == {"ndcg@10", "hr@10", "mrr"}
    d = out["b_over_a"]["hr@10"]
    assert d["ci"][0] <= d["lift"] <= d["ci"][1]
    arms = list(out["arms"].values())
    assert d["delta"] == pytest.approx(arms[1]["hr@10"] - arms[0]["hr@10"], abs=1e-6)
    table = run_cli(["ab", "compare", "--arm", str(a), "--arm", str(b), "--bootstrap", "100"], **dirs)
    assert "| hr@10 |" in table.stdout
    assert "95% CI" in table.stdout
    one = run_cli(["ab", "compare", "--arm", str(a)], **dirs)
    assert one.returncode == 2
    assert "exactly two --arm files" in one.stderr


def test_bad_gate_config_is_one_clear_error(promoted, tmp_path: Path) -> None:
    dirs, _ = promoted
    bad = tmp_path / "gates.yaml"
    bad.write_text("canary: {fraction: 0.1, salted: x}\n")
    proc = run_cli(["pipeline", "run", "lightgcn", "--model", "1", "--gates", str(bad)], **dirs)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("canary.salted: unknown key")


def test_workflow_step_writes_its_outputs_and_checks_the_previous_decision(promoted, tmp_path: Path) -> None:
    """``pipeline step`` as an Argo task runs it: outputs on disk, and ``--after`` refuses a candidate whose
    previous step did not pass (or was about another version)."""
    dirs, gates = promoted
    out = tmp_path / "out"
    base = ["pipeline", "step", "stage", "lightgcn", "--model", "1", "--gates", gates]
    proc = run_cli([*base, "--out", str(out)], **dirs)
    assert proc.returncode == 0, proc.stderr
    assert (out / "passed").read_text() == "true"
    assert (out / "version").read_text() == "1"
    assert json.loads((out / "decision.json").read_text())["step"] == "stage"
    for prev, message in (
        (
            {"step": "evaluate", "plugin": "lightgcn", "version": "1", "passed": False},
            "did not pass; refusing",
        ),
        ({"step": "evaluate", "plugin": "lightgcn", "version": "7", "passed": True}, "about another model"),
    ):
        after = tmp_path / "after.json"
        after.write_text(json.dumps(prev))
        refused = run_cli([*base, "--after", str(after), "--out", str(tmp_path / "x")], **dirs)
        assert refused.returncode == 2
        assert message in refused.stderr
        assert not (tmp_path / "x").exists()
    latest = run_cli(
        [
            "pipeline",
            "step",
            "evaluate",
            "lightgcn",
            "--model",
            "lightgcn@latest",
            "--out",
            str(tmp_path / "l"),
        ],
        **dirs,
    )
    assert latest.returncode == 0, latest.stderr
    newest = sorted((dirs["state_dir"] / "artifacts" / "lightgcn" / "synthetic").iterdir())[-1]
    version = (tmp_path / "l" / "version").read_text()
    assert _registry(dirs)[version]["artifact"] == str(newest)


def test_rank_and_rerank_plugins_go_through_the_same_pipeline(promoted, tmp_path: Path) -> None:
    """DIN on lightgcn@prod, then RankNet on din@prod: each trained, evaluated in its own cascade, staged
    with its kind's contract suite, canaried and promoted by the same commands."""
    dirs, _ = promoted
    gates = tmp_path / "gates.yaml"  # the synthetic world is too small for quality floors on a 2-epoch DIN
    gates.write_text(
        "evaluate: {minimum: {}}\ncanary: {fraction: 0.3, p99_budget_ms: 100}\nstage: {p99_budget_ms: 100}\n"
    )
    recall = "recall={type: lightgcn, model: lightgcn@prod}"
    din = ["--set", recall, "--set", "recall_k=50", "--set", "item_dim=16", "--set", "mlp_hidden=[16]"]
    proc = run_cli(["pipeline", "run", "din", "--epochs", "2", *din, "--gates", str(gates), "--json"], **dirs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert [d["step"] for d in out["decisions"]] == ["evaluate", "stage", "canary", "prod"]
    assert "rank contract suite" in {c["name"] for c in out["decisions"][1]["checks"]}
    against_input = [c for c in out["decisions"][0]["checks"] if "vs its input order" in c["name"]]
    assert {c["name"].split(" vs ")[0] for c in against_input} == {"ndcg@10", "hr@10"}
    assert all(c["passed"] and c["numbers"]["ci"][1] >= 0 for c in against_input)
    rank = "rank={type: din, model: din@prod}"
    ranknet = ["--set", recall, "--set", rank, "--set", "recall_k=50", "--set", "rank_k=20"]
    proc = run_cli(
        ["pipeline", "run", "ranknet", "--epochs", "3", *ranknet, "--gates", str(gates), "--json"], **dirs
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["promoted"]
    assert "rerank contract suite" in {c["name"] for c in out["decisions"][1]["checks"]}
    listed = json.loads(run_cli(["registry", "list", "--json"], **dirs).stdout)
    assert {"lightgcn", "din", "ranknet"} <= set(listed)
    assert any("prod" in v["aliases"] for v in listed["ranknet"])


def test_a_ranker_that_makes_its_input_worse_is_refused(promoted, tmp_path: Path) -> None:
    """DIN with random weights scoring alone (``recall_blend`` 0) against the LightGCN order it receives:
    the evaluate gate's paired comparison with that order refuses it, whatever the floors."""
    dirs, _ = promoted
    gates = tmp_path / "gates.yaml"
    gates.write_text("evaluate: {minimum: {}}\n")
    recall = "recall={type: lightgcn, model: lightgcn@prod}"
    din = ["--set", recall, "--set", "recall_k=50", "--set", "item_dim=16", "--set", "mlp_hidden=[16]"]
    trained = run_cli(["train", "din", "--epochs", "1", *din, "--json"], **dirs)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    src = Path(json.loads(trained.stdout)["artifact"])
    dst = tmp_path / "random-din"
    shutil.copytree(src, dst)
    state = load_file(dst / "model.safetensors")
    rng = np.random.default_rng(0)
    noise = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in state.items()}
    save_file(noise, dst / "model.safetensors")
    meta = json.loads((dst / "meta.json").read_text())
    meta["stage_config"] = {**meta.get("stage_config", {}), "recall_blend": 0.0}
    (dst / "meta.json").write_text(json.dumps(meta))
    proc = run_cli(["pipeline", "run", "din", "--model", str(dst), "--gates", str(gates), "--json"], **dirs)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["stopped_at"] == "evaluate"
    failed = [c for c in out["decisions"][0]["checks"] if not c["passed"]]
    assert any("vs its input order" in c["name"] for c in failed), out["decisions"][0]["reason"]
    inp = out["decisions"][0]["numbers"]["input_order"]
    assert inp["ndcg@10"] > out["decisions"][0]["numbers"]["candidate"]["ndcg@10"]


def test_the_optimize_gate_stops_a_lossy_quantisation(promoted) -> None:
    """INT8 on a 2-bit weight grid: the variant is made and registered, but its paired NDCG@10 interval
    against the unoptimised version reaches below -1%, so it goes no further and prod stays."""
    dirs, gates = promoted
    prod = _prod(dirs)
    args = ["pipeline", "run", "lightgcn", "--model", "lightgcn@prod", "--optimize", "int8", "--bits", "2"]
    proc = run_cli([*args, "--gates", gates, "--json"], **dirs)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["stopped_at"] == "optimize"
    assert [d["step"] for d in out["decisions"]] == ["evaluate", "optimize"]
    decision = out["decisions"][1]
    loss = next(c for c in decision["checks"] if c["name"].startswith("ndcg@10 vs the unoptimised"))
    assert not loss["passed"]
    assert loss["numbers"]["ci"][0] < -0.01
    variant = _registry(dirs)[decision["version"]]
    assert variant["gates"]["optimize"] == "failed"
    assert variant["version"] != prod
    assert "-int8-2bit" in variant["artifact"]
    assert _prod(dirs) == prod


def test_an_optimized_variant_goes_through_every_gate_in_its_parents_place(promoted) -> None:
    """ONNX Runtime FP32: within the bound, so the variant (a new version naming its parent) is staged
    through the contract suite, canaried against prod and promoted; rollback returns to the parent."""
    dirs, gates = promoted
    parent = _prod(dirs)
    args = ["pipeline", "run", "lightgcn", "--model", "lightgcn@prod", "--optimize", "onnx"]
    proc = run_cli([*args, "--gates", gates, "--json"], **dirs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert [d["step"] for d in out["decisions"]] == ["evaluate", "optimize", "stage", "canary", "prod"]
    loss = out["decisions"][1]["checks"][0]
    assert loss["passed"]
    assert loss["numbers"]["ci"][0] >= -0.01
    variant = out["version"]
    assert variant != parent
    assert _prod(dirs) == variant
    info = _registry(dirs)[variant]
    assert info["artifact"].endswith("-onnx")
    assert info["eval"]["ndcg_at_10"] > 0
    back = run_cli(["rollback", "lightgcn", "--reason", "variant drill"], **dirs)
    assert back.returncode == 0, back.stderr
    assert _prod(dirs) == parent
