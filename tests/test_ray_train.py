"""``replayrec train lightgcn --workers 2``: the same LightningModule under Ray Train (2 CPU workers, DDP)
matches single-process training after the same epochs within the stated tolerance, started locally or on an
existing Ray cluster given its address."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.numpy import load_file

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
METRICS = ("ndcg@20", "recall@20", "ndcg@10")
Dirs = dict[str, Path]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dirs, dict, dict]:
    root = tmp_path_factory.mktemp("ray")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs)
    assert prep.returncode == 0, prep.stderr
    single = run_cli([*ARGS, "--json"], **dirs)
    assert single.returncode == 0, single.stderr
    ray = run_cli([*ARGS, "--workers", "2", "--json"], **dirs)
    assert ray.returncode == 0, ray.stderr
    return dirs, json.loads(single.stdout), json.loads(ray.stdout)


def test_two_ray_workers_match_single_process(runs) -> None:
    dirs, one, two = runs
    assert two["workers"] == 2
    assert two["epochs_run"] == one["epochs_run"] == 4
    for m in METRICS:
        assert two["val"][m] == pytest.approx(one["val"][m], rel=TOLERANCE), m
    assert two["val"]["recall@20"] > 3 * 20 / 400, "far above a random ranking"
    state = load_file(Path(two["artifact"]) / "model.safetensors")
    assert state["item_embedding"].shape == (400, 16)
    assert json.loads((Path(two["artifact"]) / "meta.json").read_text())["distributed"] == "ray-train-ddp"

    import mlflow

    client = mlflow.MlflowClient(two["tracking_uri"])
    assert client.get_run(two["run_id"]).data.params["workers"] == "2"
    assert client.get_model_version("replayrec-lightgcn", two["model_version"]).tags["dataset"] == "synthetic"
    bad = run_cli([*ARGS, "--workers", "0"], **dirs)
    assert bad.returncode == 2
    assert "--workers must be at least 1" in bad.stderr


@pytest.fixture
def ray_cluster() -> Iterator[str]:
    """A separate Ray head node (``ray start --head``) on 127.0.0.1 with token authentication."""
    temp = Path(tempfile.mkdtemp(prefix="rr-", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = 6390 + os.getpid() % 500
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    start = subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
            "--object-store-memory",
            str(256 * 2**20),
            "--temp-dir",
            str(temp),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120, check=False)
        shutil.rmtree(temp, ignore_errors=True)


def test_an_existing_cluster_given_its_address(
    runs, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs, _, local = runs
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # the driver presents the cluster's token
    proc = run_cli([*ARGS, "--ray-address", ray_cluster, "--workers", "2", "--json"], **dirs)
    assert proc.returncode == 0, proc.stderr
    remote = json.loads(proc.stdout)
    assert remote["workers"] == 2
    for m in METRICS:  # same seeds, same sharding: the same numbers as the locally started cluster
        assert remote["val"][m] == pytest.approx(local["val"][m], rel=1e-6), m
