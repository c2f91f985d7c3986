"""The Kubernetes manifests under deploy/: every environment renders with the real ``kubectl kustomize``,
its built-in kinds pass ``kubernetes-validate --strict``, its custom resources their CRDs' JSON schemas, and
the house rules hold; the NetworkPolicies admit exactly the traffic the design names.

What stays untested here (no API server can run): admission (Pod Security, quotas), the controllers (HPA,
the Prometheus and KubeRay operators, ingress-nginx's canary routing), CEL rules beyond the two create-time
KubeRay rules, and whether the images pull and start."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from replayrec.config import Settings
from replayrec.infra import (
    DEFAULT_REGISTRY,
    IMAGES,
    InfraError,
    Peer,
    Workload,
    check_manifests,
    crd_schema_dir,
    deploy_environments,
    documented_secrets,
    environment_documents,
    house_rules,
    image_spec,
    reachable_from,
    validate_builtin,
    validate_custom,
    workload_table,
    workloads,
)
from replayrec.testing import run_cli

REPO = Path(__file__).resolve().parents[2]
SECRET_REF = {"name": "db", "key": "k"}
pytestmark = pytest.mark.integration
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def settings() -> Settings:
    tools = REPO / ".venv-deploy" / "bin"
    for tool in ("kubectl", "kubernetes-validate"):
        if not (tools / tool).is_file():
            pytest.fail(f"{tools / tool} is missing: run `make deploy-tools` (make test does)")
    s = Settings(infra_dir=REPO / "infra", data_dir=REPO.parent / "shared" / "data", deploy_tools_bin=tools)
    if not crd_schema_dir(s).is_dir():
        pytest.fail(f"no CRD schemas at {crd_schema_dir(s)}")
    return s


@pytest.fixture(scope="module")
def rendered(settings: Settings) -> dict[str, list[Doc]]:
    return {env: environment_documents(settings, env) for env in deploy_environments(settings)}


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} documents"
    return found[0]


def _workload(docs: list[Doc], name: str) -> Workload:
    return next(w for w in workloads(docs) if w.name == name)


def test_every_environment_the_argocd_apps_and_the_jobs_validate(settings: Settings) -> None:
    steps = check_manifests(settings)
    assert {s.target for s in steps} == {"k8s/staging", "k8s/canary", "k8s/prod", "argocd", "k8s/jobs"}
    failed = [f"{s.target}:\n{s.detail}" for s in steps if not s.ok]
    assert not failed, "\n".join(failed)
    by = {s.target: s.numbers for s in steps}
    assert by["k8s/prod"]["builtin"] >= 30
    assert by["k8s/prod"]["custom"] == 5  # 2 ServiceMonitors, PodMonitor, RayCluster, PrometheusRule
    assert by["argocd"]["custom"] == 4
    assert by["k8s/jobs"]["custom"] == 1


def test_each_environment_runs_the_whole_system(rendered: dict[str, list[Doc]]) -> None:
    wanted = {
        ("Deployment", "replayrec-service"), ("Deployment", "replayrec-stream"), ("StatefulSet", "redis"),
        ("StatefulSet", "kafka"), ("Deployment", "mlflow"), ("StatefulSet", "postgresql"),
        ("HorizontalPodAutoscaler", "replayrec-service"), ("PodDisruptionBudget", "replayrec-service"),
        ("Service", "replayrec-service"), ("Ingress", "replayrec-service"),
        ("ServiceMonitor", "replayrec-service"), ("PodMonitor", "replayrec-stream"),
        ("RayCluster", "replayrec-ray"), ("NetworkPolicy", "default-deny-ingress"),
    }  # fmt: skip
    for env in ("staging", "prod"):
        have = {(d["kind"], d["metadata"]["name"]) for d in rendered[env]}
        assert wanted <= have, (env, wanted - have)
        namespaces = {d["metadata"].get("namespace") for d in rendered[env] if d["kind"] != "Namespace"}
        assert namespaces == {"replayrec" if env == "prod" else "replayrec-staging"}
    assert not [d for docs in rendered.values() for d in docs if d["kind"] == "Secret"]


def test_the_service_is_sized_from_the_load_test_and_scaled_at_70_percent(
    rendered: dict[str, list[Doc]],
) -> None:
    prod = rendered["prod"]
    pod = _one(prod, "Deployment", "replayrec-service")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"] == "1"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    for env in ("staging", "prod", "canary"):
        hpa = next(d for d in rendered[env] if d["kind"] == "HorizontalPodAutoscaler")
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert _one(prod, "HorizontalPodAutoscaler", "replayrec-service")["spec"]["minReplicas"] == 3
    assert _one(prod, "PodDisruptionBudget", "replayrec-service")["spec"] == {
        "minAvailable": 2,
        "selector": _one(prod, "Deployment", "replayrec-service")["spec"]["selector"],
    }
    assert _one(prod, "StatefulSet", "kafka")["spec"]["replicas"] == 3


def test_the_canary_takes_a_weighted_share_beside_prod_and_prod_never_selects_it(
    rendered: dict[str, list[Doc]],
) -> None:
    canary = rendered["canary"]
    ingress = _one(canary, "Ingress", "replayrec-service-canary")
    prod_ingress = _one(rendered["prod"], "Ingress", "replayrec-service")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/canary"] == "true"
    assert notes["nginx.ingress.kubernetes.io/canary-weight"] == "10"
    assert ingress["spec"]["rules"][0]["host"] == prod_ingress["spec"]["rules"][0]["host"]
    assert (
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        == "replayrec-service-canary"
    )
    stable_svc = _one(canary, "Service", "replayrec-service")["spec"]["selector"]
    canary_pods = _workload(canary, "replayrec-service-canary")
    assert canary_pods.labels["replayrec.dev/track"] == "canary"
    assert any(stable_svc.get(k) != v for k, v in canary_pods.labels.items() if k in stable_svc)


def _ns(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def _peers(docs: list[Doc]) -> list[Peer]:
    inside = [Peer(w.name, w.labels, _ns(w.namespace)) for w in workloads(docs)]
    return [
        *inside,
        Peer("argo-step", {"workflows.argoproj.io/workflow": "replayrec-promotion-x"}, _ns("replayrec")),
        Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, _ns("ingress-nginx")),
        Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, _ns("monitoring")),
        Peer("alertmanager", {"app.kubernetes.io/name": "alertmanager"}, _ns("monitoring")),
        Peer("stranger", {"app.kubernetes.io/name": "replayrec-service"}, _ns("default")),
    ]


def _allowed(docs: list[Doc], target: str, port: int) -> set[str]:
    w = _workload(docs, target)
    return {p.name for p in _peers(docs) if reachable_from(docs, w, p, port)}


def test_network_policies_admit_only_the_designed_traffic(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["canary"]  # prod with the canary beside it
    clients = {"replayrec-service", "replayrec-service-canary", "replayrec-stream"}
    assert _allowed(docs, "redis", 6379) == clients
    assert _allowed(docs, "kafka", 9092) == clients | {"kafka", "replayrec-monitor"}
    assert _allowed(docs, "replayrec-service", 8000) == {"ingress-nginx", "prometheus", "replayrec-monitor"}
    assert _allowed(docs, "replayrec-stream", 9466) == {"prometheus"}
    assert _allowed(docs, "replayrec-monitor", 9467) == {"prometheus", "alertmanager"}
    assert _allowed(docs, "postgresql", 5432) == {"mlflow"}
    assert _allowed(docs, "mlflow", 5000) == {
        "replayrec-service",
        "replayrec-service-canary",
        "replayrec-monitor",
        "argo-step",
    } | {
        "replayrec-ray/head",
        "replayrec-ray/gpu",
    }
    assert _allowed(docs, "replayrec-service", 9999) == set()  # a port no rule names


def test_without_the_default_deny_everything_is_reachable(rendered: dict[str, list[Doc]]) -> None:
    docs = [d for d in rendered["prod"] if d["kind"] != "NetworkPolicy"]
    assert "stranger" in _allowed(docs, "redis", 6379)


def test_the_promotion_workflows_prerequisites_are_deployed(
    settings: Settings, rendered: dict[str, list[Doc]]
) -> None:
    template = yaml.safe_load((REPO / "argo" / "rendered" / "promotion-template.yaml").read_text())
    spec = template["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
    }
    maps = {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
    text = yaml.safe_dump(template)
    secrets = {f"{n}/{k}" for n, k in [("replayrec-mlflow", "tracking-uri")] if n in text}
    assert claims == {"replayrec-state", "replayrec-data"}
    assert maps == {"replayrec-config"}
    assert secrets
    for env in ("staging", "prod"):
        have = {(d["kind"], d["metadata"]["name"]) for d in rendered[env]}
        assert {("PersistentVolumeClaim", c) for c in claims} <= have
        assert ("ConfigMap", "replayrec-config") in have
        assert ("ServiceAccount", spec.get("serviceAccountName", "replayrec-pipeline")) in have
        gates = _one(rendered[env], "ConfigMap", "replayrec-config")["data"]["gates.yaml"]
        assert gates == (REPO / "configs" / "gates.yaml").read_text()
    assert secrets <= documented_secrets(settings)


def test_the_workload_table_names_every_container(rendered: dict[str, list[Doc]]) -> None:
    rows = {r["workload"]: r for r in workload_table(rendered["prod"])}
    assert rows["Deployment/replayrec-service"]["probes"] == {
        "startup": "GET /healthz",
        "readiness": "GET /readyz",
        "liveness": "GET /healthz",
    }
    assert rows["Deployment/replayrec-service"]["network_policies"] == [
        "default-deny-ingress",
        "replayrec-service",
    ]
    assert rows["RayCluster/replayrec-ray/gpu"]["requests"]["nvidia.com/gpu"] == "1"
    assert all(r["requests"] and r["limits"] for r in rows.values())


# -- the validators catch what they are there for ----------------------------------------------------------
def test_strict_validation_rejects_a_misspelt_field_and_an_unknown_kind(
    settings: Settings, rendered: dict[str, list[Doc]]
) -> None:
    deployment = copy.deepcopy(_one(rendered["prod"], "Deployment", "replayrec-service"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"tcpSocket": {"port": 8000}}
    errors = validate_builtin(settings, [deployment])
    assert len(errors) == 1
    assert "readinesProbe" in errors[0]
    unknown = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "x"},
        "spec": {},
    }
    (error,) = validate_builtin(settings, [unknown])
    assert "Certificate" in error


def test_custom_resources_are_checked_against_their_crds(
    settings: Settings, rendered: dict[str, list[Doc]]
) -> None:
    monitor = copy.deepcopy(_one(rendered["prod"], "ServiceMonitor", "replayrec-service"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    errors = validate_custom([monitor], crd_schema_dir(settings))
    assert len(errors) == 1
    assert "intervall" in errors[0]
    group = {"name": "g", "partial_response_strategy": "warn", "rules": [{"record": "a", "expr": "1"}]}
    rule = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r"},
        "spec": {"groups": [group]},
    }  # fmt: skip
    assert validate_custom([rule], crd_schema_dir(settings)) == []  # the Go-only regex flag, fixed in memory
    strimzi = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "Kafka",
        "metadata": {"name": "k"},
        "spec": {},
    }
    (error,) = validate_custom([strimzi], crd_schema_dir(settings))
    assert "no schema" in error
    job = yaml.safe_load((REPO / "deploy" / "k8s" / "jobs" / "rayjob-train-lightgcn.yaml").read_text())
    job["spec"]["rayClusterSpec"] = {"headGroupSpec": {"rayStartParams": {}, "template": {}}}
    assert any("not both" in e for e in validate_custom([job], crd_schema_dir(settings)))


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c, p: c["resources"].pop("limits"), "requests and limits"),
        (lambda c, p: c.update(image="registry.replayrec.internal/service:latest"), "no pinned tag"),
        (lambda c, p: c["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
        (lambda c, p: c.pop("readinessProbe"), "without readiness and liveness probes"),
        (lambda c, p: p["securityContext"].update(runAsUser=0), "non-root"),
        (lambda c, p: c["env"].append({"name": "X", "valueFrom": {"secretKeyRef": SECRET_REF}}),
         "secret db/k is not"),
        (lambda c, p: p.update(serviceAccountName="nobody"), "service account nobody does not exist"),
    ],
)  # fmt: skip
def test_house_rules_name_each_breach(
    settings: Settings, rendered: dict[str, list[Doc]], breakage: Any, expected: str
) -> None:
    docs = copy.deepcopy(rendered["prod"])
    assert house_rules(docs, documented_secrets(settings)) == []
    pod = _one(docs, "Deployment", "replayrec-service")["spec"]["template"]["spec"]
    breakage(pod["containers"][0], pod)
    errors = house_rules(docs, documented_secrets(settings))
    assert any(expected in e and "replayrec-service" in e for e in errors), errors


def test_house_rules_catch_broken_references_and_committed_secrets(rendered: dict[str, list[Doc]]) -> None:
    docs = copy.deepcopy(rendered["prod"])
    _one(docs, "Service", "redis")["spec"]["selector"]["app.kubernetes.io/name"] = "rediss"
    _one(docs, "HorizontalPodAutoscaler", "replayrec-service")["spec"]["scaleTargetRef"]["name"] = "svc"
    _one(docs, "ServiceMonitor", "replayrec-service")["spec"]["endpoints"][0]["port"] = "metrics"
    docs.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops"}, "stringData": {"a": "b"}}
    )
    errors = "\n".join(house_rules(docs))
    for expected in (
        "Service/redis: its selector",
        "scales Deployment/svc",
        "scrapes port(s) ['metrics']",
        "Secret/oops",
    ):
        assert expected in errors, errors


def test_an_unknown_environment_is_refused_with_the_choices(settings: Settings) -> None:
    with pytest.raises(InfraError, match="choose one of canary, prod, staging"):
        environment_documents(settings, "qa")


def test_the_cli_checks_renders_and_tabulates_as_a_user_runs_it(settings: Settings, tmp_path: Path) -> None:
    def replayrec(*args: str) -> Any:
        return run_cli(list(args), state_dir=tmp_path / "state", data_dir=settings.data_dir, timeout=300)

    proc = replayrec("deploy", "check", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    steps = {(s["step"], s["target"]) for s in report["steps"]}
    assert {("manifests", f"k8s/{env}") for env in ("staging", "canary", "prod")} <= steps
    assert ("hadolint", "deploy/docker/service.Dockerfile") in steps
    proc = replayrec("deploy", "render", "staging")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] == "Deployment"}
    assert namespaces == {"replayrec-staging"}
    proc = replayrec("deploy", "workloads", "prod", "--json")
    rows = json.loads(proc.stdout)["workloads"]
    assert {r["workload"] for r in rows} >= {"Deployment/replayrec-service", "StatefulSet/kafka"}
    proc = replayrec("deploy", "render", "qa")
    assert proc.returncode != 0
    assert "choose one of canary, prod, staging" in proc.stderr


def test_every_project_image_is_the_one_deploy_build_makes_of_this_checkout(
    rendered: dict[str, list[Doc]],
) -> None:
    built = {spec.tag(REPO) for spec in IMAGES}
    ours = {
        c["image"]
        for docs in rendered.values()
        for w in workloads(docs)
        for c in w.containers
        if c["image"].startswith(DEFAULT_REGISTRY)
    }
    assert ours, "no project image in the renders"
    assert ours <= built, f"stale tags (bump with the package versions): {sorted(ours - built)}"
    argo = yaml.safe_load((REPO / "argo" / "rendered" / "promotion-template.yaml").read_text())
    image = next(p["value"] for p in argo["spec"]["arguments"]["parameters"] if p["name"] == "image")
    assert image == image_spec("training-gpu").tag(REPO)


def test_the_cluster_gets_the_rules_and_the_dashboards(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["prod"]
    rule = _one(docs, "PrometheusRule", "replayrec")
    assert rule["metadata"]["labels"]["release"] == "monitoring"
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"ReplayrecDataDrift", "ReplayrecOnlineHitRateDegraded", "ReplayrecServeLatencyHigh"} <= alerts
    boards = _one(docs, "ConfigMap", "replayrec-dashboards")
    assert boards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(boards["data"]) == [
        "replayrec-models.json",
        "replayrec-stream.json",
        "replayrec-system.json",
    ]
    for kind, name in (("ServiceMonitor", "replayrec-service"), ("ServiceMonitor", "replayrec-monitor"),
                       ("PodMonitor", "replayrec-stream")):  # fmt: skip
        spec = _one(docs, kind, name)["spec"]
        endpoint = (spec.get("endpoints") or spec.get("podMetricsEndpoints"))[0]
        jobs = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        assert jobs == [name.removeprefix("replayrec-")], (kind, name)  # the rules' job names
    monitor = _workload(docs, "replayrec-monitor")
    assert monitor.replicas == 1
