"""Prometheus for real: the binaries (Debian's, cached), promtool on the committed rules, their unit tests and
the generated configuration, every alert covered firing and quiet, and a real Prometheus scraping a real
exporter until the drift alert fires (and a real Alertmanager handing it to a retraining webhook)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.monitoring._metrics import MonitorMetrics
from replayrec.monitoring._prometheus import (
    JOBS,
    PrometheusTools,
    prometheus_config,
    prometheus_tools,
    rule_files,
    rule_tests_dir,
    write_prometheus_config,
)
from replayrec.monitoring._promtool import (
    check_alertmanager_config,
    check_config,
    check_monitoring,
    check_rules,
)
from replayrec.monitoring._promtool import test_rules as run_rule_tests
from replayrec.monitoring._server import (
    alertmanager_config,
    alerts,
    query,
    reload,
    start_alertmanager,
    start_prometheus,
    wait_for_alert,
)
from replayrec.runtime import free_port, pid_alive, port_open, serve_metrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "monitoring" / "prometheus" / "rules"
TESTS = REPO / "deploy" / "monitoring" / "prometheus" / "tests"
RAW_METRIC = re.compile(r"(?<![\w:])(replayrec_[a-z0-9_]+)(?![\w:])")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(infra_dir=REPO / "infra")


@pytest.fixture(scope="module")
def tools() -> PrometheusTools:
    try:
        return prometheus_tools()
    except ReplayrecError as exc:
        pytest.fail(f"no Prometheus binaries: {exc}")


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((RULES / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _groups() -> list[dict[str, Any]]:
    return [g for f in sorted(RULES.glob("*.yml")) for g in yaml.safe_load(f.read_text())["groups"]]


# -- no binary needed --------------------------------------------------------------------------------------


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for path in sorted(TESTS.glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                counts = firing if expected else quiet
                counts[check["alertname"]] = counts.get(check["alertname"], 0) + 1
                for alert in expected:  # a firing case asserts the labels and every annotation
                    assert alert.get("exp_labels", {}).get("severity"), (case["name"], alert)
                    assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}
    names = [r["alert"] for r in _alert_rules()]
    assert len(names) == len(set(names))
    missing = {n: [k for k, seen in (("firing", firing), ("quiet", quiet)) if n not in seen] for n in names}
    assert {n: m for n, m in missing.items() if m} == {}
    assert set(firing) | set(quiet) <= set(names), "a unit test names an alert alerts.yml does not have"


def test_alerts_carry_severity_annotations_and_a_runbook_that_exists() -> None:
    doc = (REPO / "docs" / "monitoring.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)}
    for rule in _alert_rules():
        name, labels, notes = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in {"info", "warning", "critical"}, name
        assert {"summary", "description", "runbook_url"} <= set(notes), name
        assert notes["runbook_url"] == f"docs/monitoring.md#{name.lower()}"
        assert name.lower() in anchors, f"docs/monitoring.md has no section {name}"
        if labels.get("retrain") is not None:
            assert labels["retrain"] == "true", name
            assert labels.get("plugin"), name
            assert rule.get("for", "0m") in {"0m", "0s", "1m"}, f"{name}: the drill needs it within seconds"
    retrain = {r["alert"] for r in _alert_rules() if r.get("labels", {}).get("retrain") == "true"}
    assert {"ReplayrecDataDrift", "ReplayrecUnseenShareHigh", "ReplayrecOnlineHitRateDegraded"} <= retrain
    assert all(g["name"].startswith("replayrec-") for g in _groups())


def _exported() -> set[str]:
    """Every series name the project's exporters can expose (with the counter and histogram suffixes)."""
    from replayrec.bus._metrics import BusMetrics
    from replayrec.stream._metrics import StreamMetrics

    serving = pytest.importorskip("replayrec_serving._metrics")
    names: set[str] = set()
    for metrics in (MonitorMetrics(), StreamMetrics(), BusMetrics(), serving.ServiceMetrics()):
        for family in metrics.registry.collect():
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_the_rules_read_only_series_the_exporters_have() -> None:
    exported = _exported()
    used = {m for g in _groups() for r in g["rules"] for m in RAW_METRIC.findall(r["expr"])}
    assert used, "no raw metric found in the rules"
    assert sorted(used - exported) == []


def test_the_generated_configuration() -> None:
    config = prometheus_config(
        {"service": ["127.0.0.1:8000"], "monitor": ["127.0.0.1:9400"], "stream": []},
        scrape_interval_s=1,
        evaluation_interval_s=0.5,
        alertmanagers=["127.0.0.1:9093"],
    )
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "500ms",
    }
    assert [j["job_name"] for j in config["scrape_configs"]] == ["service", "monitor"]
    assert config["rule_files"] == [str(p) for p in sorted(RULES.glob("*.yml"))]
    assert all(Path(p).is_absolute() for p in config["rule_files"])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    with pytest.raises(ConfigError, match="unknown scrape jobs"):
        prometheus_config({"services": ["127.0.0.1:1"]})
    with pytest.raises(ConfigError, match="host:port"):
        prometheus_config({"service": ["http://127.0.0.1:8000/metrics"]})


def test_rule_files_of_a_checkout_without_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Prometheus rule files"):
        rule_files(Settings(infra_dir=tmp_path / "infra"))


def test_binaries_on_path_come_first(
    tools: PrometheusTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, path in (("prometheus", tools.prometheus), ("promtool", tools.promtool)):
        (bin_dir / name).symlink_to(path)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    found = prometheus_tools(alertmanager=False, cache_dir=tmp_path / "empty-cache")
    assert (found.source, found.prometheus, found.version) == ("path", bin_dir / "prometheus", tools.version)
    assert not (tmp_path / "empty-cache").exists()


def test_no_binaries_anywhere_says_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no prometheus, no apt-get
    with pytest.raises(ReplayrecError, match="apt-get download prometheus failed"):
        prometheus_tools(cache_dir=tmp_path / "cache")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_binaries_are_downloaded_into_an_empty_cache_once(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("not a Debian machine")
    first = prometheus_tools(cache_dir=tmp_path)
    if first.source == "path":
        pytest.skip("Prometheus is on PATH: nothing is downloaded")
    assert first.source == "download"
    assert first.prometheus.is_relative_to(tmp_path / "prometheus")
    assert first.alertmanager is not None
    again = prometheus_tools(cache_dir=tmp_path)
    assert (again.source, again.prometheus, again.alertmanager) == (
        "cache",
        first.prometheus,
        first.alertmanager,
    )
    assert sorted(p.name for p in (tmp_path / "prometheus").iterdir()) == [
        ".lock",
        first.prometheus.parents[2].name,
    ]


# -- promtool -----------------------------------------------------------------------------------------------


def test_promtool_checks_the_generated_config(
    tools: PrometheusTools, settings: Settings, tmp_path: Path
) -> None:
    targets = {job: [f"127.0.0.1:{9400 + i}"] for i, job in enumerate(JOBS)}
    path = write_prometheus_config(tmp_path / "prometheus.yml", targets, rule_files=rule_files(settings))
    result = check_config(path, tools)
    assert result.ok, result.output
    assert "SUCCESS" in result.output
    assert result.command[1:3] == ["check", "config"]


def test_promtool_checks_the_rules(tools: PrometheusTools, settings: Settings) -> None:
    result = check_rules(rule_files(settings), tools)
    assert result.ok, result.output
    found = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", result.output)]
    assert len(found) == 2
    assert sum(found) == sum(len(g["rules"]) for g in _groups())


def test_the_rules_unit_tests_pass(tools: PrometheusTools, settings: Settings) -> None:
    files = sorted(rule_tests_dir(settings).glob("*.yml"))
    result = run_rule_tests(files, tools)
    assert result.ok, result.output
    assert result.output.count("SUCCESS") == len(files) >= 2


def test_a_broken_rule_file_is_reported(tools: PrometheusTools, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: replayrec-broken\n    rules:\n"
        "      - alert: Broken\n        expr: rate(replayrec_serve_errors_total[5m] > 0\n"
    )
    result = check_rules([broken], tools)
    assert not result.ok
    assert result.returncode != 0
    assert str(broken) in result.output
    assert "parse error" in result.output
    assert "Broken" in result.output


def test_a_failing_unit_test_is_reported(tools: PrometheusTools, tmp_path: Path) -> None:
    case = {
        "rule_files": [str(RULES / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": 'up{job="service",instance="x"}', "values": "0x5"}],
            "alert_rule_test": [{"eval_time": "5m", "alertname": "ReplayrecTargetDown", "exp_alerts": []}],
        }],
    }  # fmt: skip
    path = tmp_path / "wrong_test.yml"
    path.write_text(yaml.safe_dump(case))
    result = run_rule_tests([path], tools)
    assert not result.ok
    assert "FAILED" in result.output
    assert "ReplayrecTargetDown" in result.output


def test_check_monitoring_passes(tools: PrometheusTools, settings: Settings) -> None:
    steps = check_monitoring(settings, tools)
    assert [s.step for s in steps][:3] == [
        "promtool check rules",
        "promtool test rules",
        "promtool check config",
    ]
    assert all(s.ok for s in steps), [(s.step, s.detail) for s in steps if not s.ok]
    assert steps[0].target == "deploy/monitoring/prometheus/rules"
    assert steps[0].numbers["rules"] == sum(len(g["rules"]) for g in _groups())
    if tools.amtool is not None:
        assert steps[-1].step == "amtool check-config"


def test_the_alertmanager_config_is_valid(tools: PrometheusTools, tmp_path: Path) -> None:
    if tools.alertmanager is None:
        pytest.skip("Alertmanager is not available")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config("http://127.0.0.1:9/retrain", token_file=token)))
    result = check_alertmanager_config(path, tools)
    assert result.ok, result.output
    with pytest.raises(ConfigError, match="not both"):
        alertmanager_config("http://127.0.0.1:9/retrain", "t", token_file=token)


# -- a real Prometheus --------------------------------------------------------------------------------------


@pytest.fixture
def drifting_exporter() -> Iterator[int]:
    """A monitor's real exporter: item_group's PSI at 0.31 over its 0.2 threshold, JS under its own."""
    metrics = MonitorMetrics()
    metrics.drift.labels("item_group", "psi").set(0.31)
    metrics.drift.labels("item_group", "js").set(0.01)
    metrics.drift_threshold.labels("psi").set(0.2)
    metrics.drift_threshold.labels("js").set(0.1)
    metrics.last_check.set(time.time())
    port = free_port()
    server = serve_metrics(metrics.registry, port, "test monitor")
    assert server is not None
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


def _until(what: str, probe: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout_s:.0f} s")


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_prometheus_scrapes_and_fires_the_drift_alert(
    tools: PrometheusTools, settings: Settings, drifting_exporter: int, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{drifting_exporter}"
    config = prometheus_config(
        {"monitor": [target]}, scrape_interval_s=1, evaluation_interval_s=1, rule_files=rule_files(settings)
    )
    with start_prometheus(config, tmp_path / "prom", tools=tools) as prom:
        assert prom.url == f"http://127.0.0.1:{prom.port}"
        assert pid_alive(prom.pid)
        sample = _until(
            "the drift score queried", lambda: query(prom.url, 'replayrec_drift_score{score="psi"}')
        )
        assert sample[0]["metric"]["feature"] == "item_group"
        assert float(sample[0]["value"][1]) == 0.31
        up = _until("the target up", lambda: query(prom.url, f'up{{instance="{target}"}} == 1'))
        assert up[0]["metric"]["job"] == "monitor"
        alert = wait_for_alert(prom.url, "ReplayrecDataDrift", timeout_s=30)
        assert alert["labels"] | {"instance": "-"} == {
            "alertname": "ReplayrecDataDrift", "feature": "item_group", "score": "psi", "job": "monitor",
            "instance": "-", "plugin": "lightgcn", "retrain": "true", "severity": "warning",
        }  # fmt: skip
        assert "0.310" in alert["annotations"]["description"]
        assert {a["labels"]["alertname"] for a in alerts(prom.url)} == {"ReplayrecDataDrift"}
        reload(prom.url)
        pid, port = prom.pid, prom.port
    assert not pid_alive(pid)
    assert not port_open("127.0.0.1", port)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_prometheus_that_cannot_start_says_why(tools: PrometheusTools, tmp_path: Path) -> None:
    config = {"global": {"scrape_interval": "soon"}}
    with pytest.raises(ReplayrecError, match=r"Prometheus on 127\.0\.0\.1:.*exited.*soon"):  # noqa: SIM117
        with start_prometheus(config, tmp_path / "prom", tools=tools):
            pass


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_alertmanager_hands_the_drift_alert_to_the_retraining_webhook(
    tools: PrometheusTools, settings: Settings, drifting_exporter: int, tmp_path: Path
) -> None:
    if tools.alertmanager is None:
        pytest.skip("Alertmanager is not available")
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    am_config = alertmanager_config(f"http://127.0.0.1:{hook.server_port}/v1/retrain", token_file=token)
    try:
        with start_alertmanager(am_config, tmp_path / "am", tools=tools) as am:
            assert (am.config_path.stat().st_mode & 0o777) == 0o600
            config = prometheus_config(
                {"monitor": [f"127.0.0.1:{drifting_exporter}"]}, scrape_interval_s=1, evaluation_interval_s=1,
                rule_files=rule_files(settings), alertmanagers=[f"127.0.0.1:{am.port}"],
            )  # fmt: skip
            with start_prometheus(config, tmp_path / "prom", tools=tools):
                path, auth, body = _until("a webhook call", lambda: _Webhook.received[:1], timeout_s=45)[0]
            am_pid = am.pid
        assert not pid_alive(am_pid)
    finally:
        hook.shutdown()
        hook.server_close()
    assert path == "/v1/retrain"
    assert auth == "Bearer s3cret"
    assert body["receiver"] == "retrain"
    assert body["groupLabels"] == {"plugin": "lightgcn"}
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["ReplayrecDataDrift"]
    assert body["alerts"][0]["labels"]["feature"] == "item_group"


def test_the_clusters_prometheus_rule_is_the_committed_rules() -> None:
    """deploy/k8s/base/monitor/prometheusrule.yaml is generated from the rule files (golden): the cluster runs
    exactly the promtool-tested rules. (`replayrec deploy check` validates it against the CRD's schema.)"""
    from replayrec.monitoring._prometheus import prometheus_rule, prometheus_rule_path, render_prometheus_rule

    path = prometheus_rule_path()
    assert path.read_text() == render_prometheus_rule(), "run `replayrec monitor rules --write` and commit it"
    rule = prometheus_rule()
    assert rule["metadata"]["labels"] == {"release": "monitoring"}  # kube-prometheus-stack's rule selector
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert len(names) == len(set(names))
    assert {"replayrec-serving", "replayrec-model-quality"} <= set(names)
