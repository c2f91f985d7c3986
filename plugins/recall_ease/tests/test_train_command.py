"""`replayrec train ease` end to end on a tiny synthetic world: Lightning, MLflow, artifact, evaluate."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from replayrec.testing import run_cli

Dirs = dict[str, Path]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Dirs]:
    root = tmp_path_factory.mktemp("train")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "8000", "--users", "400", "--items", "300"], **dirs)
    assert prep.returncode == 0, prep.stderr
    proc = run_cli(
        ["train", "ease", "--set", "lambda_grid=[1, 10]", "--set", "max_items=250", "--json"], **dirs
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), dirs


def test_train_saves_a_loadable_artifact(trained) -> None:
    out, _ = trained
    art = Path(out["artifact"])
    state = load_file(art / "model.safetensors")
    assert set(state) == {"items", "indptr", "indices", "data", "item_counts"}
    assert state["items"].size == 250
    assert state["item_counts"].size == 300
    meta = json.loads((art / "meta.json").read_text())
    assert meta["plugin"] == "ease"
    assert meta["plugin_version"] == version("replayrec-recall-ease")
    assert meta["train_config"]["lambda_grid"] == [1.0, 10.0]
    fit = json.loads((art / "ease_fit.json").read_text())
    assert len(fit["grid"]) == 2
    assert fit["lambda"] in [row["lambda"] for row in fit["grid"]]
    assert 0 < fit["mass_kept"] <= 1
    assert set(out["val"]) >= {"ndcg@10", "hr@10", "recall@200"}


def test_run_is_tracked_in_mlflow(trained) -> None:
    import mlflow

    out, _ = trained
    client = mlflow.MlflowClient(out["tracking_uri"])
    run = client.get_run(out["run_id"])
    assert run.data.params["lambda_"] == "validate"
    assert len(client.get_metric_history(out["run_id"], "grid_val_ndcg_at_10")) == 2
    assert client.get_metric_history(out["run_id"], "mass_kept")
    names = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"model.safetensors", "meta.json", "ease_fit.json"} <= names


def test_evaluate_accepts_the_artifact(trained) -> None:
    out, dirs = trained
    proc = run_cli(
        ["evaluate", "--plugin", "ease", "--model", out["artifact"], "--json", "--bootstrap", "50"], **dirs
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert 0 < res["ndcg@10"] < 1
    assert res["plugin"] == "ease"


def test_bad_training_config_is_one_line(trained) -> None:
    _, dirs = trained
    proc = run_cli(["train", "ease", "--set", "lambda=-1"], **dirs)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: invalid training config for 'ease': lambda")
