"""`replayrec train lightgcn` end to end on a tiny synthetic world: Lightning, MLflow, artifact, evaluate."""

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
        [
            "train",
            "lightgcn",
            "--epochs",
            "4",
            "--set",
            "eval_every=2",
            "--set",
            "batch_size=1024",
            "--set",
            "dim=16",
            "--json",
        ],
        **dirs,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), dirs


def test_train_saves_a_loadable_artifact(trained) -> None:
    out, _ = trained
    art = Path(out["artifact"])
    state = load_file(art / "model.safetensors")
    assert state["item_embedding"].shape == (300, 16)
    meta = json.loads((art / "meta.json").read_text())
    assert meta["plugin"] == "lightgcn"
    assert meta["dataset"] == "synthetic"
    assert meta["plugin_version"] == version("replayrec-recall-lightgcn")
    assert meta["epochs_run"] == 4
    assert (art / "curves.png").read_bytes()[:4] == b"\x89PNG"
    ids = json.loads((art / "ids.json").read_text())
    assert len(ids["items"]) == 300
    assert len(ids["users"]) == 400
    assert set(out["val"]) >= {"ndcg@10", "hr@10", "recall@20", "ndcg@20"}
    assert out["seconds_per_epoch"] > 0


def test_run_is_tracked_in_mlflow(trained) -> None:
    import mlflow

    out, _ = trained
    client = mlflow.MlflowClient(out["tracking_uri"])
    run = client.get_run(out["run_id"])
    assert run.data.params["dataset"] == "synthetic"
    assert run.data.params["lr"] == "0.01"
    losses = client.get_metric_history(out["run_id"], "train_loss")
    assert len(losses) == 4
    assert losses[-1].value < losses[0].value, "the loss goes down"
    assert len(client.get_metric_history(out["run_id"], "val_ndcg_at_20")) == 2
    names = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"model.safetensors", "meta.json", "curves.png", "ids.json"} <= names


def test_evaluate_accepts_the_artifact(trained) -> None:
    out, dirs = trained
    proc = run_cli(
        ["evaluate", "--plugin", "lightgcn", "--model", out["artifact"], "--json", "--bootstrap", "50"],
        **dirs,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert 0 < res["ndcg@10"] < 1
    assert res["plugin"] == "lightgcn"


def test_bad_training_config_is_one_line(trained) -> None:
    _, dirs = trained
    proc = run_cli(["train", "lightgcn", "--set", "depth=3"], **dirs)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "error: invalid training config for 'lightgcn': depth: unknown key"
    )
    proc = run_cli(["train", "nonesuch"], **dirs)
    assert "error: unknown trainer 'nonesuch'; available: " in proc.stderr
    assert "lightgcn" in proc.stderr.rsplit("available: ", 1)[1]
