"""The serving install profile: a fresh virtual environment with only core's base install and the three
model plugins (no ``[train]`` extras) loads trained LightGCN → DIN → RankNet artifacts and answers a cascade
request exactly as the full environment does, without torch, Lightning, MLflow, Ray or pytest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from replayrec.application import TRAINING_ONLY, build_serving_env, cold_start_probe, importable_modules
from replayrec.config import Settings
from replayrec.testing import run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "item_dim=16", "--set", "mlp_hidden=[16]", "--set", "max_targets=3000"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """LightGCN, a DIN over its candidates and a RankNet over that DIN, on a small synthetic world."""
    root = tmp_path_factory.mktemp("serving")
    d = {"state_dir": root / "state", "data_dir": root / "no-data"}
    steps = [
        ["data", "prepare", "--events", "8000", "--users", "400", "--items", "300"],
        ["train", "lightgcn", "--epochs", "2", "--set", "dim=16", "--set", "batch_size=1024"],
        ["train", "din", "--epochs", "1", "--set", "recall_k=50", *SMALL],
        ["train", "ranknet", "--epochs", "2", "--set", "recall_k=50", "--set", "rank_k=20"],
    ]
    for args in steps:
        proc = run_cli(args, **d)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return d


@pytest.fixture(scope="module")
def serving_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_serving_env(tmp_path_factory.mktemp("venv") / "serving", ROOT)


def _env(dirs: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, "REPLAYREC_STATE_DIR": str(dirs["state_dir"]), "REPLAYREC_DATA_DIR": str(dirs["data_dir"])}


def test_training_libraries_are_absent(serving_python: Path) -> None:
    found = importable_modules(serving_python)
    assert set(found) == set(TRAINING_ONLY)
    assert not any(found.values()), found
    assert importable_modules(serving_python, ("replayrec_rank_din", "safetensors")) == {
        "replayrec_rank_din": True,
        "safetensors": True,
    }


def test_serving_env_answers_like_the_full_env(serving_python: Path, trained: dict[str, Path]) -> None:
    code = (
        "import json; from replayrec.application import cold_start_probe; "
        "from replayrec.config import Settings; "
        "out = cold_start_probe(Settings(), 'synthetic', 'ranknet@latest'); out.pop('_imported'); "
        "print(json.dumps(out))"
    )
    proc = subprocess.run(
        [str(serving_python), "-c", code],
        capture_output=True,
        text=True,
        env=_env(trained),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["training_modules_imported"] == []
    assert len(served["items"]) == 10
    full = cold_start_probe(Settings(**trained), "synthetic", "ranknet@latest")  # type: ignore[arg-type]
    assert served["items"] == full["items"], "the same artifacts give the same answer without torch"


def _serving_cli(python: Path, dirs: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """The serving environment's own ``replayrec`` command."""
    cli = python.parent / "replayrec"
    return subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env=_env(dirs), timeout=300, check=False
    )


def test_serving_env_cli_lists_plugins_and_refuses_training(
    serving_python: Path, trained: dict[str, Path]
) -> None:
    listed = _serving_cli(serving_python, trained, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ok = {p["name"] for p in json.loads(listed.stdout) if p["ok"]}
    assert {"popularity", "itemcf", "lightgcn", "din", "ranknet", "passthrough"} <= ok
    train = _serving_cli(serving_python, trained, "train", "din")
    assert train.returncode == 2
    assert "replayrec-rank-din[train]" in train.stderr
    by_alias = _serving_cli(
        serving_python, trained, "evaluate", "--plugin", "lightgcn", "--model", "lightgcn@prod"
    )
    assert by_alias.returncode == 2, by_alias.stderr
    assert "needs replayrec-core[train]" in by_alias.stderr


def test_serving_env_runs_the_http_service_on_the_trained_cascade(
    serving_python: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    """``replayrec serve`` from the serving environment (replayrec-serving, no MLflow: models named
    ``<plugin>@latest``) answers over HTTP with the three models; no online store, so degraded but 200."""
    import time
    import urllib.request
    import uuid

    from replayrec.runtime import free_port, spawn, stop_process

    cascade = tmp_path / "cascade.yaml"
    cascade.write_text(
        "recall: {k: 50, channels: [{type: lightgcn, model: lightgcn@latest}]}\n"
        "rank: {type: din, model: din@latest, k: 20}\nrerank: {type: ranknet, model: ranknet@latest, k: 10}\n"
    )
    port = free_port()
    ns = f"p{uuid.uuid4().hex[:8]}"
    env = {
        **_env(trained),
        "REPLAYREC_PORT": str(port),
        "REPLAYREC_CASCADE": str(cascade),
        "REPLAYREC_BUS_NAMESPACE": ns,
        "REPLAYREC_WARMUP_REQUESTS": "3",
    }
    proc = spawn([str(serving_python.parent / "replayrec"), "serve"], tmp_path / "serve.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, body = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/v1/recommendations/0?k=10", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.3)
        assert body is not None, (tmp_path / "serve.log").read_text()[-2000:]
        assert body["arm"] == "prod"
        assert set(body["versions"]) == {"lightgcn", "din", "ranknet"}
        assert len(body["items"]) == 10
        assert body["degraded"]  # no online store in this namespace: answered all the same
    finally:
        stop_process(proc.pid, timeout_s=15)
        import redis

        r = redis.Redis.from_url(Settings().redis_url)
        for key in r.scan_iter(match=f"{ns}:*"):
            r.delete(key)
        r.close()
