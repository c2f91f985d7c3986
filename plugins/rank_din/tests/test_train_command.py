"""`replayrec train din` end to end on a tiny synthetic world; evaluate, report and bench its model."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from replayrec.testing import run_cli
from replayrec_rank_din.train import BLEND_GRID

Dirs = dict[str, Path]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Dirs]:
    root = tmp_path_factory.mktemp("train-din")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "8000", "--users", "400", "--items", "300"], **dirs)
    assert prep.returncode == 0, prep.stderr
    args = [
        "train",
        "din",
        "--epochs",
        "3",
        "--json",
        "--set",
        "recall={type: itemcf}",
        "--set",
        "recall_k=50",
    ]
    for kv in ("batch_size=256", "item_dim=16", "group_dim=4", "mlp_hidden=[32, 16]", "patience=5"):
        args += ["--set", kv]
    proc = run_cli(args, **dirs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), dirs


def test_train_saves_artifact_with_its_upstream_recall(trained) -> None:
    out, _ = trained
    art = Path(out["artifact"])
    meta = json.loads((art / "meta.json").read_text())
    assert meta["plugin"] == "din"
    assert meta["plugin_version"] == version("replayrec-rank-din")
    assert meta["epochs_run"] == 3
    blend = meta["stage_config"].pop("recall_blend")
    assert blend in BLEND_GRID, "the recall-order weight validation chose"
    assert meta["stage_config"] == {"max_history": 50, "explain": True}
    up = json.loads((art / "upstream.json").read_text())
    assert up == {"recall": {"type": "itemcf"}, "recall_k": 50}
    assert set(out["val"]) >= {"ndcg@10", "hr@10", "gauc"}
    assert 0.5 < out["val"]["gauc"] <= 1.0, "GAUC within the validation candidate lists"
    assert out["registered_model"] == "replayrec-din"


def test_run_is_tracked_in_mlflow(trained) -> None:
    import mlflow

    out, _ = trained
    client = mlflow.MlflowClient(out["tracking_uri"])
    run = client.get_run(out["run_id"])
    assert run.data.params["hard_negatives"] == "24"
    losses = [m.value for m in client.get_metric_history(out["run_id"], "train_loss")]
    assert len(losses) == 3
    assert losses[-1] < losses[0], "the loss goes down"
    assert len(client.get_metric_history(out["run_id"], "val_ndcg_at_10")) == 3
    mv = client.get_model_version("replayrec-din", out["model_version"])
    assert mv.tags["replayrec.artifact"] == out["artifact"]
    assert mv.tags["dataset"] == "synthetic"


def test_evaluate_in_the_cascade_by_path_latest_and_alias(trained) -> None:
    import mlflow

    out, dirs = trained
    base = ["evaluate", "--plugin", "din", "--json", "--bootstrap", "50", "--ks", "10,20,50", "--model"]
    by_path = run_cli([*base, out["artifact"]], **dirs)
    assert by_path.returncode == 0, by_path.stderr
    res = json.loads(by_path.stdout)
    recall = run_cli(
        ["evaluate", "--plugin", "itemcf", "--json", "--bootstrap", "50", "--ks", "10,20,50"], **dirs
    )
    assert set(json.loads(recall.stdout)) <= set(res), "the same JSON keys as a recall evaluation"
    assert res["plugin"] == "din"
    assert res["auc_scope"].startswith("candidate list")
    assert 0 < res["ndcg@10"] < 1
    assert res["recall@50"] == pytest.approx(json.loads(recall.stdout)["recall@50"], abs=1e-9), (
        "din reorders the recall's top 50: the same items, so the same recall@50"
    )
    latest = run_cli([*base, "din@latest"], **dirs)
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout)["ndcg@10"] == res["ndcg@10"]

    client = mlflow.MlflowClient(out["tracking_uri"])
    client.set_registered_model_alias("replayrec-din", "staging", out["model_version"])
    staged = run_cli([*base, "din@staging"], **dirs)
    assert staged.returncode == 0, staged.stderr
    assert json.loads(staged.stdout)["ndcg@10"] == res["ndcg@10"]
    missing = run_cli([*base, "din@prod"], **dirs)
    assert missing.returncode == 2
    assert "din@prod: no such alias" in missing.stderr
    wrong = run_cli([*base, "lightgcn@latest"], **dirs)
    assert "names plugin 'lightgcn', expected 'din'" in wrong.stderr
    no_model = run_cli(["evaluate", "--plugin", "din"], **dirs)
    assert no_model.returncode == 2
    assert "needs --model" in no_model.stderr


def test_report_stages_and_bench_rank(trained) -> None:
    _, dirs = trained
    proc = run_cli(
        [
            "report",
            "stages",
            "--rank-model",
            "din@latest",
            "--recall",
            "itemcf",
            "--rerank",
            "",
            "--bootstrap",
            "50",
            "--json",
        ],
        **dirs,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert list(rows) == ["popularity", "itemcf", "recall", "recall+rank"]
    for row in rows.values():
        assert {"ndcg@10", "hr@10"} <= set(row)
        assert row["ci"]["ndcg@10"][0] <= row["ndcg@10"] <= row["ci"]["ndcg@10"][1]
    assert rows["recall"]["recall@50"] == pytest.approx(rows["recall+rank"]["recall@50"])
    lift = rows["recall+rank"]["lift_over_recall"]["ndcg@10"]
    assert lift[1] <= lift[0] <= lift[2]
    # the recall row is item-CF's top-50 order: item-CF's own full-ranking NDCG@10
    assert rows["recall"]["ndcg@10"] == pytest.approx(rows["itemcf"]["ndcg@10"], abs=1e-9)

    bench = run_cli(
        ["bench", "rank", "din", "--model", "din@latest", "--requests", "30", "--repeat", "2", "--json"],
        **dirs,
    )
    assert bench.returncode == 0, bench.stderr
    b = json.loads(bench.stdout)
    assert b["candidates"] == 200
    assert b["din"]["p50_ms"] > 0
    assert b["din"]["p99_ms"] >= b["din"]["p50_ms"]
    assert "passthrough (baseline)" in b

    cascade = dirs["state_dir"].parent / "cascade.yaml"
    cascade.write_text(
        "recall: {k: 50, type: itemcf}\nrank: {type: din, model: din@latest, k: 20}\n"
        "rerank: {type: passthrough, k: 10}\nrules: [{type: group_cap, max_per_group: 2}]\n"
    )
    proc = run_cli(
        ["bench", "cascade", "--config", str(cascade), "--requests", "30", "--repeat", "1", "--json"], **dirs
    )
    assert proc.returncode == 0, proc.stderr
    c = json.loads(proc.stdout)[str(cascade)]
    assert c["counts"] == "50 -> 20 -> 10"
    assert 0 < c["rank"]["p50_ms"] <= c["total"]["p99_ms"]
    assert c["total"]["p50_ms"] >= c["recall"]["p50_ms"]
