"""The registry on a real ``mlflow server`` backed by the running PostgreSQL (127.0.0.1:5432): register,
aliases, prod move and rollback, ``<plugin>@<alias>`` resolution and ``replayrec registry list``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from replayrec.testing import run_cli

pytestmark = pytest.mark.integration

PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("REPLAYREC_PG_USER", "root")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"replayrec_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 (CI starts it): {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with the PostgreSQL backend store, stopped (process group) after."""
    root = tmp_path_factory.mktemp("mlflow-pg")
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        database,
        "--default-artifact-root",
        (root / "artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _artifact(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    meta = {
        "plugin": "lightgcn",
        "dataset": "synthetic",
        "protocol": "loo",
        "core_api": "1.0",
        "plugin_version": "0.2.0",
        "train_config": {"dim": 16},
        "val_metrics": {"ndcg@10": 0.04},
        "dataset_fingerprint": "0123456789abcdef",
        "git_commit": "abc123",
        "stage_config": {},
    }
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def test_registry_on_mlflow_server_with_postgres(server: str, database: str, tmp_path: Path) -> None:
    import psycopg2

    from replayrec.config import Settings
    from replayrec.registry import ModelRegistry, resolve_model

    reg = ModelRegistry(server)
    v1 = reg.register(_artifact(tmp_path, "a"))
    v2 = reg.register(_artifact(tmp_path, "b"))
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.tags["dataset_fingerprint"] == "0123456789abcdef"
    assert json.loads(v1.tags["config"]) == {"dim": 16}
    assert reg.move_prod("lightgcn", "1") is None
    assert reg.move_prod("lightgcn", "2") == "1"
    versions = {v.version: v.aliases for v in reg.versions("lightgcn")}
    assert versions == {"1": ("prod-previous",), "2": ("prod",)}
    settings = Settings(state_dir=tmp_path / "state")
    assert (
        resolve_model("lightgcn@prod", settings, "synthetic", "lightgcn", server)
        == (tmp_path / "b").resolve()
    )
    assert reg.rollback("lightgcn") == ("2", "1")
    assert reg.by_alias("lightgcn", "prod").version == "1"  # type: ignore[union-attr]

    # the rows are in PostgreSQL, not in a local file
    with psycopg2.connect(database.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT alias, version FROM registered_model_aliases ORDER BY alias")
        assert cur.fetchall() == [("prod", 1), ("prod-previous", 2)]

    env_dirs = {"state_dir": tmp_path / "state", "data_dir": tmp_path / "no-data"}
    proc = run_cli(["registry", "list", "--json", "--tracking-uri", server], **env_dirs)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)["lightgcn"]
    assert [v["aliases"] for v in listed] == [["prod"], ["prod-previous"]]
    assert listed[0]["git_commit"] == "abc123"
    assert shutil.which("mlflow") or Path(sys.executable).with_name("mlflow").exists()
