"""``replayrec train lightgcn --workers 2``: the same LightningModule under Ray Train (2 CPU workers, DDP)
matches single-process training after the same epochs within the stated tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from replayrec.testing import run_cli

pytestmark = pytest.mark.slow

ARGS = [
    "train",
    "lightgcn",
    "--epochs",
    "4",
    "--set",
    "eval_every=2",
    "--set",
    "dim=16",
    "--set",
    "batch_size=1024",
]
#: stated tolerance: each DDP step averages the gradients of two batches (half the steps of one process),
#: so validation metrics after the same epochs agree to within 20% (relative), not exactly
TOLERANCE = 0.20


def test_two_ray_workers_match_single_process(tmp_path: Path) -> None:
    dirs = {"state_dir": tmp_path / "state", "data_dir": tmp_path / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs)
    assert prep.returncode == 0, prep.stderr
    single = run_cli([*ARGS, "--json"], **dirs)
    assert single.returncode == 0, single.stderr
    ray = run_cli([*ARGS, "--workers", "2", "--json"], **dirs)
    assert ray.returncode == 0, ray.stderr
    one, two = json.loads(single.stdout), json.loads(ray.stdout)
    assert two["workers"] == 2
    assert two["epochs_run"] == one["epochs_run"] == 4
    for m in ("ndcg@20", "recall@20", "ndcg@10"):
        assert two["val"][m] == pytest.approx(one["val"][m], rel=TOLERANCE), m
    assert two["val"]["recall@20"] > 3 * 20 / 400, "far above a random ranking"
    state = torch.load(Path(two["artifact"]) / "model.pt", weights_only=True)
    assert state["item_embedding"].shape == (400, 16)
    assert json.loads((Path(two["artifact"]) / "meta.json").read_text())["distributed"] == "ray-train-ddp"

    import mlflow

    client = mlflow.MlflowClient(two["tracking_uri"])
    assert client.get_run(two["run_id"]).data.params["workers"] == "2"
    assert client.get_model_version("replayrec-lightgcn", two["model_version"]).tags["dataset"] == "synthetic"
    bad = run_cli([*ARGS, "--workers", "0"], **dirs)
    assert bad.returncode == 2
    assert "--workers must be at least 1" in bad.stderr
