"""``replayrec monitor drill`` end to end, as a user runs it: the synthetic world with its abrupt shift,
LightGCN trained before the cut, a real Tansu broker, the Spark stream job, ``replayrec serve`` over HTTP,
Prometheus with the project's rules, the monitor in-process, retraining through ``replayrec pipeline run``
and its gates
— drift detected → alert → retrain → promoted → the service switches → online HR measured in each phase."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from replayrec.config import Settings
from replayrec.promotion import AuditLog
from replayrec.runtime import free_port, port_open, read_pid

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDER = ("system up", "prometheus started", "drift detected", "retrain started", "retrain finished",
         "promoted", "service switched", "phase after_retrain")  # fmt: skip


def test_the_drill_detects_retrains_promotes_switches_and_recovers(tmp_path: Path) -> None:
    ns, broker = f"r{uuid.uuid4().hex[:10]}", free_port()
    state = tmp_path / "state"
    env = {**os.environ, "REPLAYREC_STATE_DIR": str(state), "REPLAYREC_DATA_DIR": str(tmp_path / "no-data"),
           "REPLAYREC_BUS_NAMESPACE": ns, "REPLAYREC_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}"}  # fmt: skip
    try:
        out = subprocess.run([sys.executable, "-m", "replayrec", "monitor", "drill", "--json"], env=env,
                             capture_output=True, text=True, timeout=1500, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr[-4000:]
        res = json.loads(out.stdout)
    finally:
        r = redis.Redis.from_url(Settings().redis_url)
        for key in r.scan_iter(match=f"{ns}*", count=2000):
            r.delete(key)
        r.close()
    events = [e["event"] for e in res["timeline"]]
    assert (res["detected"], res["alerted"], res["retrained"], res["promoted"], res["switched"]) == (
        True, True, True, True, True
    ), res["timeline"]  # fmt: skip
    assert [e for e in events if e in ORDER] == list(ORDER), events
    # Prometheus evaluated the committed rules against the monitor's metrics: the drift alert fired
    assert "ReplayrecDataDrift" in res["alerts"]
    # the retraining trained on the data as it stood at the replay clock, after the shift
    assert res["retrain"]["until"] > res["timeline"][0]["cut"]  # the data as of the alert, after the cut
    shift = next(e for e in res["timeline"] if e["event"] == "phase during_drift")["replay_clock"]
    started = next(e for e in res["timeline"] if e["event"] == "retrain started")
    assert started["replay_clock"] > shift
    assert any(r.startswith("drift: ") for r in started["reasons"])
    for phase in ("before_drift", "during_drift", "after_retrain"):
        p = res["phases"][phase]
        assert p["events"] >= 100, (phase, p)
        assert 0 <= p["ci"][0] <= p["hr@10"] <= p["ci"][1] <= 1, (phase, p)
        assert res[f"hr_{phase}"] == p["hr@10"]
        assert set(res["slices"][phase]) == {"cold_users", "heavy_users", "popular_items", "long_tail_items",
                                             "new_items"}  # fmt: skip
    assert res["hr_during_drift"] < res["hr_before_drift"]  # the shift hurt the served model ...
    assert res["hr_after_retrain"] > res["hr_during_drift"]  # ... and the retrained one recovers
    # the season's new items: never hit before the retraining, hit after it
    assert res["slices"]["during_drift"]["new_items"]["hr@10"] == 0
    assert res["slices"]["after_retrain"]["new_items"]["hr@10"] > 0
    # the reason is in the promotion audit log, beside the gates' decisions of the same model
    drill = state / "drill"
    records = AuditLog(drill / "audit" / "promotion.jsonl").read("lightgcn")
    retrain = [r for r in records if r["step"] == "retrain"]
    assert [r["outcome"] for r in retrain] == ["submitted", "promoted"]
    assert retrain[0]["reason"].startswith("drift: ")
    assert {r["step"] for r in records} >= {"train", "evaluate", "stage", "canary", "prod"}
    # everything it started is stopped
    assert not port_open("127.0.0.1", broker)
    assert read_pid(drill / "stream" / f"{ns}-drill" / "job.pid", expect="stream run") is None
    prom = next(e for e in res["timeline"] if e["event"] == "prometheus started")["url"]
    assert not port_open("127.0.0.1", int(prom.rsplit(":", 1)[1]))
