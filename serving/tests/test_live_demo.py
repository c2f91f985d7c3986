"""``replayrec demo`` end to end on a synthetic world, as a user runs it: models trained before the temporal
cut, a real Tansu broker, the Spark stream job, Redis, ``replayrec serve`` over HTTP, the replay evaluation
through all of them, a replay controller afterwards — and Ctrl-C stopping every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from replayrec.application import open_dataset
from replayrec.config import Settings
from replayrec.features import OnlineFeatures, view_namespace
from replayrec.runtime import free_port, pid_alive, port_open, read_pid, stop_process
from replayrec.testing import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {
    "lightgcn": {"epochs": 4, "eval_every": 2, "dim": 16, "batch_size": 1024},
    "din": {"epochs": 1, "item_dim": 16, "mlp_hidden": [32], "recall_k": 50},
    "ranknet": {"epochs": 1, "recall_k": 50, "rank_k": 20},
}
TOKEN = "demo-test-token"
ARMS = ("real_time", "nightly", "frozen", "popularity", "item_cf")


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class _Output:
    """The demo's output, read as it comes (the demo runs until told to stop)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float, proc: subprocess.Popen[str]) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hit = next((ln for ln in self.lines if text in ln), None)
            if hit is not None:
                return hit
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"{text!r} not printed; output:\n" + "".join(self.lines)[-6000:])

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _offsets(store: OnlineFeatures) -> int:
    meta = store.meta()
    assert meta is not None
    return sum(meta.offsets.values())


def test_the_demo_brings_up_the_live_system_evaluates_it_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    dirs = {"state_dir": tmp_path / "state", "data_dir": tmp_path / "no-data"}
    out = run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs)
    assert out.returncode == 0, out.stderr
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(TINY))
    ns, port, broker = f"d{uuid.uuid4().hex[:10]}", free_port(), free_port()
    env = {**os.environ,
           "REPLAYREC_STATE_DIR": str(dirs["state_dir"]), "REPLAYREC_DATA_DIR": str(dirs["data_dir"]),
           "REPLAYREC_BUS_NAMESPACE": ns, "REPLAYREC_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}",
           "REPLAYREC_ADMIN_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    argv = [sys.executable, "-m", "replayrec", "demo", "--train-config", str(profile), "--port", str(port),
            "--eval-users", "40", "--eval-days", "10", "--speed", "86400"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    output = _Output(proc)
    settings = Settings(state_dir=dirs["state_dir"], data_dir=dirs["data_dir"], bus_namespace=ns)
    try:
        line = output.wait_for("/ui#token=", 900, proc)
        url = line.split()[-1].split("/ui#")[0]
        prom = output.wait_for("monitoring: Prometheus at", 5, proc).split(" at ", 1)[1].split()[0]
        monitor = output.wait_for("monitoring: the monitor at", 5, proc).split(" at ", 1)[1].split("/v1/")[0]
        _check_monitoring(prom, monitor)
        assert url == f"http://127.0.0.1:{port}"
        result = json.loads((dirs["state_dir"] / "live" / "synthetic" / "replay-eval.json").read_text())
        _check_result(result)
        assert "| real_time |" in output.text  # the summary table was printed
        _check_forced_arms(url)
        _check_views(settings, ns)
        status, replay = _get(f"{url}/v1/replay")
        assert status == 200
        assert replay["state"]["range_from"] == pytest.approx(result["cut"] + 10 * 86_400)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=120) == 0, output.text[-4000:]
        assert "demo stopped" in output.text
        for p in (port, broker, int(prom.rsplit(":", 1)[1]), int(monitor.rsplit(":", 1)[1])):
            assert not port_open("127.0.0.1", p), f"port {p} still open after the demo stopped"
        folder = dirs["state_dir"]
        for pid_file, what in ((folder / "stream" / ns / "job.pid", "stream run"),
                               (folder / "replay" / "controller.pid", "replay start")):  # fmt: skip
            assert read_pid(pid_file, expect=what) is None, f"{what} still running"
    finally:
        if proc.poll() is None:
            stop_process(proc.pid, timeout_s=30)
        r = redis.Redis.from_url(settings.redis_url)
        for key in r.scan_iter(match=f"{ns}:*", count=2000):
            r.delete(key)
        r.close()
    assert not pid_alive(proc.pid)


def _check_monitoring(prom: str, monitor: str) -> None:
    """Prometheus scrapes the service, the stream job, the replay controller and the monitor; the monitor's
    registry exporter names the prod versions."""
    deadline = time.monotonic() + 60
    while True:
        status, body = _get(f"{prom}/api/v1/targets")
        assert status == 200
        health = {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}
        if set(health) == {"service", "stream", "replay", "monitor"} and set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, health
        time.sleep(1)
    status, body = _get(f"{prom}/api/v1/query?query=replayrec_model_info%7Balias%3D%22prod%22%7D")
    assert status == 200
    assert {r["metric"]["plugin"] for r in body["data"]["result"]} == {"lightgcn", "din", "ranknet"}
    status, report = _get(f"{monitor}/v1/report")
    assert status == 200
    assert report["registry"]["lightgcn"]["prod"] == "1"


def _check_result(res: dict[str, Any]) -> None:
    assert set(res["arms"]) == set(ARMS)
    for name in ARMS:
        arm = res["arms"][name]
        for metric in ("hr@10", "ndcg@10"):
            lo, hi = arm["ci"][metric]
            assert 0 <= lo <= arm[metric] <= hi <= 1, (name, metric, arm)
        assert arm["degraded_answers"] == 0, (name, arm)
    assert res["arms"]["real_time"]["hr@10"] > 0  # the models find something
    assert res["n_events"] > 40
    assert res["n_users"] == 40
    assert res["freshness_p95_ms"] >= res["freshness_p50_ms"] > 0
    for other in ("frozen", "nightly"):
        ratio = res[f"ratio_real_time_over_{other}"]
        r = res["ratios"][f"real_time/{other}:hr@10"]
        assert ratio == r["ratio"]
        if res["arms"][other]["hr@10"] == 0:  # no hit in the baseline: the ratio is undefined (null)
            assert ratio is None
        else:
            assert ratio == pytest.approx(res["arms"]["real_time"]["hr@10"] / res["arms"][other]["hr@10"])
            assert r["ci"][0] <= ratio <= r["ci"][1]
    assert "40 of" in res["sampling"]


def _check_forced_arms(url: str) -> None:
    status, body = _get(f"{url}/v1/recommendations/u1?arm=prod")
    assert status == 401  # an admin's request only
    status, body = _get(f"{url}/v1/recommendations/u1?arm=nope", TOKEN)
    assert status == 422
    assert "prod" in body["detail"]
    assert "popularity" in body["detail"]
    status, body = _get(f"{url}/v1/recommendations/u1?arm=popularity", TOKEN)
    assert status == 200
    assert body["arm"] == "popularity"
    assert len(body["items"]) == 10
    status, body = _get(f"{url}/v1/recommendations/u1", TOKEN)
    assert body["arm"] == "prod"  # the evaluation's arms take no traffic (and are gone after it)


def _check_views(settings: Settings, ns: str) -> None:
    """The frozen view stayed at the cut, the nightly one at a later midnight, the live store moved on."""
    ds = open_dataset(settings, None)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        live = OnlineFeatures(client, ns, ds.catalog.groups)
        frozen = OnlineFeatures(client, view_namespace(ns, "frozen"), ds.catalog.groups)
        nightly = OnlineFeatures(client, view_namespace(ns, "nightly"), ds.catalog.groups)
        assert _offsets(frozen) < _offsets(nightly) < _offsets(live)
    finally:
        client.close()
