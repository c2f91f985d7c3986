"""Retraining on alert: the trigger (cool-down kept on disk, one run at a time, the reason in the audit log),
submitted through the real argo-workflows client to the Argo Server API stand-in of ``test_infra_argo`` (the
submit body validated against the official schema), and the monitor's HTTP endpoint taking Alertmanager's
webhook. The checks themselves (bus, service, registry) run end to end in the drill
(serving/tests/test_drill.py)."""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replayrec.config import Settings
from replayrec.data import WorldConfig, ensure_prepared, load_dataset
from replayrec.errors import ReplayrecError
from replayrec.monitoring import (
    ModelMonitor,
    MonitorConfig,
    MonitorMetrics,
    MonitorService,
    RetrainConfig,
    RetrainTrigger,
    alert_reasons,
)
from replayrec.promotion import audit_log

pytestmark = pytest.mark.integration

# the Argo Server API stand-in (and its fixture) of test_infra_argo.py, loaded by path (importlib mode)
_spec = importlib.util.spec_from_file_location("_argo_fake", Path(__file__).with_name("test_infra_argo.py"))
assert _spec is not None
assert _spec.loader is not None
_fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake)
FakeArgo, TOKEN, argo = _fake.FakeArgo, _fake.TOKEN, _fake.argo


def _settings(tmp_path: Path, fake: FakeArgo | None) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", argo_server=fake.url if fake else None, argo_token=TOKEN,
        argo_namespace="replayrec",
    )  # fmt: skip


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) as Alertmanager sends it."""
    return {
        "version": "4", "groupKey": '{}:{alertname="ReplayrecDataDrift"}', "status": "firing",
        "receiver": "replayrec-retrain", "groupLabels": {"alertname": "ReplayrecDataDrift"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "truncatedAlerts": 0, "alerts": list(alerts),
    }  # fmt: skip


def _alert(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status, "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": {"summary": f"{name} summary"}, "startsAt": "2026-12-03T12:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "ab12",
    }  # fmt: skip


def test_argo_submission_then_cool_down_survives_a_restart(argo: FakeArgo, tmp_path: Path) -> None:
    settings = _settings(tmp_path, argo)
    metrics = MonitorMetrics()
    config = RetrainConfig(cooldown_s=3600)
    trigger = RetrainTrigger(settings, config, "amazon-books-2014-1m", "sqlite:///x.db", metrics)
    job = trigger.request(["drift: item_popularity psi 0.61 > 0.2"], "drift")
    assert job is not None
    assert (job.via, job.plugin, job.workflow) == ("argo", "lightgcn", "replayrec-retrain-lightgcn-x7k2p")
    assert argo.errors == [], "a valid WorkflowSubmitRequest"
    (sent,) = [r["body"] for r in argo.requests if r["body"]]
    assert (sent["resourceKind"], sent["resourceName"]) == ("CronWorkflow", "replayrec-retrain-lightgcn")
    assert "plugin=lightgcn" in sent["submitOptions"]["parameters"]
    (record,) = audit_log(settings).read("lightgcn")
    assert record["step"] == "retrain"
    assert (record["trigger"], record["via"], record["outcome"]) == ("drift", "argo", "submitted")
    assert record["reason"] == "drift: item_popularity psi 0.61 > 0.2"
    # within the cool-down: refused, counted, nothing sent — also by a monitor started afresh
    assert trigger.request(["again"], "drift") is None
    again = RetrainTrigger(settings, RetrainConfig(cooldown_s=3600), "amazon-books-2014-1m", "sqlite:///x.db")
    assert again.cooldown_left("lightgcn") > 3500
    assert again.request(["after a restart"], "degradation") is None
    assert len([r for r in argo.requests if r["body"]]) == 1
    assert metrics.registry.get_sample_value(
        "replayrec_monitor_retrains_total", {"plugin": "lightgcn", "trigger": "drift", "outcome": "cooldown"}
    ) == 1.0  # fmt: skip
    # another plugin has its own cool-down
    assert trigger.request(["ranker drift"], "drift", plugin="din") is not None


def test_disabled_and_clockless_requests(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    off = RetrainTrigger(settings, RetrainConfig(enabled=False), "synthetic", "sqlite:///x.db")
    assert off.request(["drift"], "drift") is None
    clockless = RetrainTrigger(settings, RetrainConfig(as_of_clock=True), "synthetic", "sqlite:///x.db",
                               clock=lambda: None)  # fmt: skip
    with pytest.raises(ReplayrecError, match="no replay clock"):
        clockless.request(["drift"], "drift")
    assert audit_log(settings).read() == []


def test_alert_reasons_takes_firing_retrain_alerts_only() -> None:
    payload = _payload(
        _alert("ReplayrecDataDrift", retrain="true", plugin="lightgcn"),
        _alert("ReplayrecOnlineHitRateDegraded", retrain="true", plugin="lightgcn"),
        _alert("ReplayrecDataDrift", status="resolved", retrain="true", plugin="din"),
        _alert("ReplayrecLatencyP99OverBudget"),
    )
    assert alert_reasons(payload) == {
        "lightgcn": ["ReplayrecDataDrift: ReplayrecDataDrift summary",
                     "ReplayrecOnlineHitRateDegraded: ReplayrecOnlineHitRateDegraded summary"],
    }  # fmt: skip
    for bad, why in (([], "'alerts' list"), ({"alerts": [1]}, r"alerts\[0\]")):
        with pytest.raises(ValueError, match=why):
            alert_reasons(bad)


@pytest.fixture
def service(tmp_path: Path, argo: FakeArgo) -> Iterator[tuple[MonitorService, str]]:
    settings = _settings(tmp_path, argo)
    world = WorldConfig(n_users=60, n_items=40, n_topics=4, n_events=600, horizon_days=10, seed=1)
    ensure_prepared("synthetic", settings, world=world)
    ds = load_dataset("synthetic", settings)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mon = ModelMonitor(settings, ds, uri, MonitorConfig())
    trigger = RetrainTrigger(settings, RetrainConfig(cooldown_s=600), ds.name, uri, mon.metrics)
    svc = MonitorService(mon, trigger, token="monitor-token")
    with svc.serve(port=0) as server:
        yield svc, f"http://127.0.0.1:{server.server_port}"
    mon.close()


def _call(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
        exc.close()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_the_webhook_needs_the_token_and_starts_retraining(
    service: tuple[MonitorService, str],
    argo: FakeArgo,
) -> None:
    svc, url = service
    assert _call(f"{url}/healthz")[0] == 503  # no check yet
    payload = _payload(_alert("ReplayrecDataDrift", retrain="true", plugin="lightgcn"))
    assert _call(f"{url}/v1/alerts", payload)[0] == 401
    assert _call(f"{url}/v1/alerts", payload, token="wrong")[0] == 401
    code, body = _call(f"{url}/v1/alerts", b"not json", token="monitor-token")
    assert code == 422
    assert "Expecting value" in body["detail"]
    code, body = _call(f"{url}/v1/alerts", {"alerts": "x"}, token="monitor-token")
    assert (code, "'alerts' list" in body["detail"]) == (422, True)
    code, body = _call(f"{url}/v1/alerts", payload, token="monitor-token")
    assert code == 202
    assert body["retrain"]["lightgcn"]["via"] == "argo"
    assert body["retrain"]["lightgcn"]["reasons"] == ["ReplayrecDataDrift: ReplayrecDataDrift summary"]
    # Alertmanager repeats a firing alert: the cool-down holds, nothing more is submitted
    code, body = _call(f"{url}/v1/alerts", payload, token="monitor-token")
    assert (code, body["retrain"]) == (202, {"lightgcn": None})
    assert len([r for r in argo.requests if r["body"]]) == 1
    code, text = _call(f"{url}/metrics")
    assert code == 200
    assert (
        'replayrec_monitor_retrains_total{outcome="submitted",plugin="lightgcn",trigger="alertmanager"} 1.0'
        in text
    )
    assert _call(f"{url}/nope")[0] == 404
    assert svc.jobs[0].trigger == "alertmanager"
