"""The Grafana dashboards: the committed JSON is what the generator builds (golden), byte for byte and every
run; their structure holds (ids, titles, grid, data source, targets); every metric name their PromQL reads is
exported by a registry (the service's, the stream job's, the bus's, the monitor's) or recorded by a rule; the
provisioning files point Grafana at them. What stays untested here: that a real Grafana renders them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from replayrec.monitoring._dashboard_checks import (
    known_metric_names,
    lint_dashboards,
    promql_metric_names,
    promql_variables,
    recorded_metric_names,
    registry_metric_names,
)
from replayrec.monitoring._dashboards import (
    DASHBOARD_UIDS,
    DASHBOARDS_DIR,
    DATASOURCE_UID,
    GRAFANA_DASHBOARDS_PATH,
    WRITE_COMMAND,
    check_dashboards,
    dashboards,
    dashboards_configmap,
    render_dashboard,
    write_dashboards,
)
from replayrec.stream import StreamMetrics
from replayrec_serving._metrics import ServiceMetrics

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / DASHBOARDS_DIR
GRAFANA = REPO / "deploy" / "monitoring" / "grafana"
RULES = REPO / "deploy" / "monitoring" / "prometheus" / "rules" / "recording.yml"
Dash = dict[str, Any]


@pytest.fixture(scope="module")
def service_names() -> set[str]:
    return registry_metric_names(ServiceMetrics().registry)


@pytest.fixture(scope="module")
def known(service_names: set[str]) -> set[str]:
    return known_metric_names(RULES) | service_names


@pytest.fixture(scope="module")
def generated() -> dict[str, Dash]:
    return dashboards()


def _panel(dash: Dash, title: str) -> Dash:
    return next(p for p in dash["panels"] if p.get("title") == title)


# -- golden, deterministic


def test_the_committed_dashboards_are_the_generated_ones(service_names: set[str]) -> None:
    problems = check_dashboards(COMMITTED, service_names, rules=RULES)
    assert not problems, "\n".join(problems)
    assert sorted(p.name for p in COMMITTED.glob("*.json")) == sorted(f"{u}.json" for u in DASHBOARD_UIDS)


def test_a_hand_edit_a_stale_and_a_missing_file_are_reported(tmp_path: Path, service_names: set[str]) -> None:
    write_dashboards(tmp_path)
    edited = tmp_path / "replayrec-stream.json"
    edited.write_text(edited.read_text().replace('"Consumer lag"', '"Lag"'))
    (tmp_path / "replayrec-models.json").unlink()
    (tmp_path / "old.json").write_text("{}")
    problems = check_dashboards(tmp_path, service_names)
    diff = next(p for p in problems if p.startswith(f"{edited}: differs from the generator"))
    assert f"run `{WRITE_COMMAND}`" in diff
    assert '"title": "Lag"' in diff
    assert '"title": "Consumer lag"' in diff
    assert any(
        p.startswith(f"{tmp_path / 'replayrec-models.json'}: missing: run `{WRITE_COMMAND}`")
        for p in problems
    )
    assert any(p.startswith(f"{tmp_path / 'old.json'}: not generated") for p in problems)


def test_output_is_deterministic(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in write_dashboards(tmp_path / "a")]
    second = [p.read_bytes() for p in write_dashboards(tmp_path / "b")]
    assert first == second
    assert [render_dashboard(d) for d in dashboards().values()] == [b.decode() for b in first]
    for text in first:
        assert text.endswith(b"}\n")
        assert not text.endswith(b"\n\n")
        assert (
            text.decode() == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


# -- what the dashboards hold


def test_three_dashboards_with_stable_uids_and_variables(generated: dict[str, Dash]) -> None:
    assert tuple(generated) == DASHBOARD_UIDS
    for uid, dash in generated.items():
        assert dash["uid"] == uid
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == DATASOURCE_UID
        assert ("arm" in variables) == (uid != "replayrec-stream")
        if "arm" in variables:
            assert variables["arm"]["type"] == "query"
            assert variables["arm"]["includeAll"]


def test_the_generated_dashboards_lint_clean(generated: dict[str, Dash], known: set[str]) -> None:
    assert lint_dashboards(generated.values(), known) == []


ABOUT = {
    "replayrec-system": (
        "replayrec_serve_request_seconds_count replayrec_serve_request_seconds_bucket "
        "replayrec_serve_stage_seconds_bucket replayrec_serve_cache_total replayrec_serve_degraded_total "
        "replayrec_serve_events_total replayrec_serve_model_swaps_total"
    ),
    "replayrec-stream": (
        "replayrec_stream_events_applied_total replayrec_stream_input_rows_total "
        "replayrec_stream_freshness_seconds_bucket replayrec_stream_lag_events "
        "replayrec_stream_batch_seconds_bucket replayrec_stream_dead_letters_total "
        "replayrec_bus_dead_letters_total replayrec_stream_rebuilds_total replayrec_replay_clock_seconds "
        "replayrec_replay_position replayrec_replay_lag_seconds replayrec_replay_speed"
    ),
    "replayrec-models": (
        "replayrec_online_metric replayrec_serve_online_hits_total replayrec_serve_feedback_total "
        "replayrec_degradation_ratio replayrec_degradation_threshold replayrec_offline_metric "
        "replayrec_serve_model_info replayrec_model_info replayrec_drift_score replayrec_drift_threshold "
        "replayrec_drift_unseen_share replayrec_monitor_retrains_total "
        "replayrec_monitor_last_retrain_timestamp_seconds"
    ),
}


@pytest.mark.parametrize(("uid", "metrics"), ABOUT.items())
def test_each_dashboard_reads_what_it_is_about(generated: dict[str, Dash], uid: str, metrics: str) -> None:
    used = {
        n
        for p in generated[uid]["panels"]
        for t in p.get("targets", [])
        for n in promql_metric_names(t["expr"])
    }
    assert set(metrics.split()) <= used, sorted(set(metrics.split()) - used)


def test_thresholds_are_drawn_beside_their_series(generated: dict[str, Dash]) -> None:
    models = generated["replayrec-models"]
    for title in (
        "Online / offline ratio by arm",
        "Drift: PSI by feature",
        "Drift: Jensen-Shannon by feature",
    ):
        panel = _panel(models, title)
        threshold = next(t for t in panel["targets"] if "threshold" in t["expr"])
        matchers = [o["matcher"] for o in panel["fieldConfig"]["overrides"]]
        assert {"id": "byFrameRefID", "options": threshold["refId"]} in matchers


# -- the lint catches what it is for


def _break(dash: Dash, how: str) -> None:
    panels = dash["panels"]
    qps, errors, latency = (_panel(dash, t) for t in ("QPS by arm", "Error rate (5xx share) by arm",
                                                       "Latency p50 / p99 by arm"))  # fmt: skip
    if how == "overlap":
        errors["gridPos"] = dict(qps["gridPos"], x=qps["gridPos"]["x"] + 4)
    elif how == "unknown metric":
        qps["targets"][0]["expr"] = "sum(rate(replayrec_serve_no_such_total[5m]))"
    elif how == "duplicate refId":
        latency["targets"][1]["refId"] = latency["targets"][0]["refId"]
    elif how == "duplicate id":
        errors["id"] = qps["id"]
    elif how == "outside the grid":
        errors["gridPos"] = dict(errors["gridPos"], x=20)
    elif how == "no title":
        del qps["title"]
    elif how == "datasource":
        qps["datasource"] = {"type": "prometheus", "uid": "prometheus"}
    elif how == "no expression":
        qps["targets"] = [{"refId": "A", "expr": " "}]
    elif how == "undefined variable":
        qps["targets"][0]["expr"] = qps["targets"][0]["expr"].replace("$arm", "$model")
    elif how == "no datasource variable":
        dash["templating"]["list"] = [v for v in dash["templating"]["list"] if v["name"] != "datasource"]
    else:
        panels.clear()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("overlap", "panel 3 'Error rate (5xx share) by arm': overlaps panel 2 'QPS by arm'"),
        (
            "unknown metric",
            "panel 2 'QPS by arm': target 'A': unknown metric 'replayrec_serve_no_such_total'",
        ),
        ("duplicate refId", "panel 6 'Latency p50 / p99 by arm': refId 'A' is used by 2 targets"),
        ("duplicate id", "panel 2 'Error rate (5xx share) by arm': duplicate id (also panel 2 'QPS by arm')"),
        ("outside the grid", "panel 3 'Error rate (5xx share) by arm': gridPos"),
        ("no title", "panel 2 None: no title"),
        ("datasource", "panel 2 'QPS by arm': datasource {'type': 'prometheus', 'uid': 'prometheus'} is not"),
        ("no expression", "panel 2 'QPS by arm': no target with an expression"),
        ("undefined variable", "panel 2 'QPS by arm': target 'A': undefined variable $model"),
        ("no datasource variable", "no `datasource` template variable"),
    ],
)
def test_a_broken_dashboard_is_reported_naming_the_panel(
    generated: dict[str, Dash], known: set[str], how: str, message: str
) -> None:
    broken = copy.deepcopy(generated["replayrec-system"])
    _break(broken, how)
    problems = lint_dashboards([broken], known)
    assert any(p.startswith("dashboard replayrec-system: ") and message in p for p in problems), problems
    if how == "outside the grid":
        assert any("outside the 24-column grid" in p for p in problems)


def test_several_problems_at_once_and_across_dashboards(generated: dict[str, Dash], known: set[str]) -> None:
    broken = copy.deepcopy(generated["replayrec-system"])
    for how in ("overlap", "unknown metric", "duplicate refId"):
        _break(broken, how)
    twin = copy.deepcopy(generated["replayrec-stream"])
    twin["uid"], twin["title"] = broken["uid"], broken["title"]
    problems = lint_dashboards([broken, twin], known)
    assert sum("overlaps" in p for p in problems) == 1
    assert sum("unknown metric" in p for p in problems) == 1
    assert sum("refId 'A' is used by 2 targets" in p for p in problems) == 1
    assert "uid 'replayrec-system' is used by 2 dashboards" in problems
    assert "title 'replayrec · system' is used by 2 dashboards" in problems


def test_a_query_variable_reading_an_unknown_metric_is_reported(
    generated: dict[str, Dash], known: set[str]
) -> None:
    broken = copy.deepcopy(generated["replayrec-models"])
    arm = next(v for v in broken["templating"]["list"] if v["name"] == "arm")
    arm["query"] = "label_values(replayrec_serve_model, arm)"
    assert lint_dashboards([broken], known) == [
        "dashboard replayrec-models: variable 'arm': unknown metric 'replayrec_serve_model'"
    ]


# -- the metric names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (arm) (rate(a_total{arm=~"$arm", status=~"5.."}[$__rate_interval]))', {"a_total"}),
        ('histogram_quantile(0.99, sum by (le, arm) (rate(h_bucket{x="y"}[5m])))', {"h_bucket"}),
        ("sum by(le)(rate(h_bucket[5m]))", {"h_bucket"}),
        ("a / ignoring (reason) group_left sum(b)", {"a", "b"}),
        ("a * on(arm) group_left(version, plugin) b", {"a", "b"}),
        ("a unless on (x) b or c and d", {"a", "b", "c", "d"}),
        ("a AND b OR c", {"a", "b", "c"}),
        ("a > bool 0.5", {"a"}),
        ("a offset 1h + b offset -5m + c @ 1609746000 + d @ end()", {"a", "b", "c", "d"}),
        ("arm:replayrec_serve_request_seconds:p99_5m > 0.2", {"arm:replayrec_serve_request_seconds:p99_5m"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
        ("sum without (instance) (max_over_time(a[1h:5m]))", {"a"}),
        ('count_values("version", a)', {"a"}),
        ("vector(1) + time() + scalar(a)", {"a"}),
        ('a{job="x,y}z", n!~"[a-z]+(b)"}', {"a"}),
        ("1e3 * a + 0x1F - Inf + NaN + .5 + 2.5e-3", {"a"}),
        ("max by (plugin) (a) * 1000", {"a"}),
        ("sum(rate(a[${__range}])) / sum(rate(b[[[interval]]]))", {"a", "b"}),
        ("online_users * on (a) offset_total + by_arm", {"online_users", "offset_total", "by_arm"}),
        ("topk(5, sum by (arm) (a)) > bool on() group_right b", {"a", "b"}),
        ('{__name__="a"}', set()),
        ("", set()),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_promql_variables() -> None:
    assert promql_variables('a{arm=~"$arm", x="${plugin:regex}"}[$__rate_interval] + [[old]]') == {
        "arm", "plugin", "__rate_interval", "old"
    }  # fmt: skip


def test_registry_names_follow_the_exposition() -> None:
    r = CollectorRegistry()
    Counter("c", "", ["l"], registry=r)
    Counter("d_total", "", registry=r)
    Histogram("h", "", ["l"], registry=r)
    Gauge("g", "", registry=r)
    assert registry_metric_names(r) == {
        "c_total", "c_created", "d_total", "d_created", "h_bucket", "h_sum", "h_count", "h_created", "g"
    }  # fmt: skip
    stream = registry_metric_names(StreamMetrics().registry)
    assert {"replayrec_stream_dead_letters_total", "replayrec_stream_freshness_seconds_bucket"} <= stream
    assert "replayrec_stream_dead_letters" not in stream


def test_recorded_names_are_read_from_a_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "recording.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - record: arm:x:rate_5m\n        expr: sum by (arm) (rate(x[5m]))\n"
        "      - alert: A\n        expr: arm:x:rate_5m > 1\n"
        "  - name: empty\n"
    )
    assert recorded_metric_names(rules) == {"arm:x:rate_5m"}
    assert recorded_metric_names(tmp_path / "absent.yml") == set()
    assert "arm:x:rate_5m" in known_metric_names(rules)
    assert "arm:x:rate_5m" not in known_metric_names()


# -- provisioning and the sidecar ConfigMap


def test_the_datasource_is_provisioned_for_the_variable() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert {k: ds[k] for k in ("name", "uid", "type", "access", "url")} == {
        "name": "Prometheus", "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy",
        "url": "${PROMETHEUS_URL}",
    }  # fmt: skip
    assert ds["isDefault"] is True


def test_the_dashboards_are_provisioned_from_their_folder() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "replayrec.yaml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    for key in ("name", "type", "folder", "options"):
        assert provider.get(key), f"the dashboard provider has no {key}"
    assert provider["type"] == "file"
    assert provider["folder"] == "replayrec"
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_PATH
    assert provider["allowUiUpdates"] is False
    assert (GRAFANA / "dashboards") == COMMITTED


def test_the_sidecar_configmap_holds_every_dashboard(generated: dict[str, Dash]) -> None:
    cm = dashboards_configmap(namespace="monitoring")
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert {k: json.loads(v) for k, v in cm["data"].items()} == {f"{u}.json": d for u, d in generated.items()}
    # `kubectl apply` (client side) keeps a copy in an annotation of at most 256 KiB
    assert len(json.dumps(cm).encode()) < 256 * 1024
    assert "namespace" not in dashboards_configmap()["metadata"]
