"""The house rules for the rendered manifests — what a schema cannot say — and the NetworkPolicy model.

Rules: every container has CPU and memory requests and limits, a pinned image tag, no privilege escalation,
all capabilities dropped and a read-only root file system (a workload that cannot have one says why in its
``replayrec.dev/writable-root`` annotation); every pod runs as non-root with the runtime's seccomp profile;
a container serving HTTP has readiness and liveness probes; no Secret is committed, and every secret a pod
names is one ``deploy/k8s/secrets.yaml`` documents; every name a manifest refers to (Service selectors,
HPA and PDB targets, Ingress backends, monitors, ConfigMaps, claims, service accounts) resolves.

``reachable_from`` evaluates the NetworkPolicies as Kubernetes does (a pod no policy selects takes anything;
a selected pod takes what one of its policies' rules admits, by peer and port).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Peer",
    "Workload",
    "house_rules",
    "reachable_from",
    "selector_matches",
    "workload_table",
    "workloads",
]

_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
WRITABLE_ROOT = "replayrec.dev/writable-root"
Doc = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    """A pod template: whose it is, its namespace and labels, its containers."""

    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    pod: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)
    replicas: int | None = None

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.pod.get("containers") or [])

    def port_names(self) -> dict[str, int]:
        return {
            p["name"]: int(p["containerPort"])
            for c in self.containers
            for p in c.get("ports") or []
            if "name" in p
        }


@dataclass(frozen=True)
class Peer:
    """A pod that may try to connect: its labels and its namespace's labels."""

    name: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]


def _meta(doc: Doc) -> dict[str, Any]:
    return doc.get("metadata") or {}


def _templates(doc: Doc) -> Iterator[tuple[str, Mapping[str, str], Mapping[str, Any], int | None]]:
    """(name, pod labels, pod spec, replicas) of each pod template in ``doc``."""
    meta, spec = _meta(doc), doc.get("spec") or {}
    if doc.get("kind") in _WORKLOAD_KINDS:
        tpl = spec.get("template") or {}
        yield (
            meta["name"],
            (tpl.get("metadata") or {}).get("labels") or {},
            tpl.get("spec") or {},
            spec.get("replicas"),
        )
    elif doc.get("kind") == "RayCluster":
        groups = [("head", spec.get("headGroupSpec") or {})]
        groups += [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs") or []]
        for group, body in groups:
            labels = {"ray.io/cluster": meta["name"], "ray.io/group": group}
            yield (
                f"{meta['name']}/{group}",
                labels,
                (body.get("template") or {}).get("spec") or {},
                body.get("replicas"),
            )


def workloads(docs: Sequence[Doc]) -> list[Workload]:
    """The pod templates of ``docs``: Deployments, StatefulSets, DaemonSets, Jobs and RayCluster groups."""
    found = []
    for doc in docs:
        meta = _meta(doc)
        for name, labels, pod, replicas in _templates(doc):
            ns, notes = meta.get("namespace", ""), meta.get("annotations") or {}
            found.append(Workload(str(doc["kind"]), name, ns, labels, pod, notes, replicas))
    return found


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (``matchLabels`` and ``matchExpressions``) against ``labels``."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]  # fmt: skip
        if not ok:
            return False
    return True


def _peer_admitted(peer_rule: Mapping[str, Any], peer: Peer, own_ns_labels: Mapping[str, str]) -> bool:
    ns_sel, pod_sel = peer_rule.get("namespaceSelector"), peer_rule.get("podSelector")
    if "ipBlock" in peer_rule:
        return False  # address ranges: not a pod-to-pod rule
    ns_ok = (
        selector_matches(ns_sel, peer.namespace_labels)
        if ns_sel is not None
        else peer.namespace_labels == own_ns_labels
    )
    return ns_ok and (pod_sel is None or selector_matches(pod_sel, peer.labels))


def _port_admitted(rule: Mapping[str, Any], port: int, target: Workload) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    names = target.port_names()
    return any(p.get("port") in (port, *[n for n, v in names.items() if v == port]) for p in ports)


def reachable_from(docs: Sequence[Doc], target: Workload, peer: Peer, port: int) -> bool:
    """Whether ``peer`` may open a connection to ``target``'s pods on ``port`` under ``docs``' policies."""
    own = {"kubernetes.io/metadata.name": target.namespace}
    policies = [
        d for d in docs
        if d.get("kind") == "NetworkPolicy" and _meta(d).get("namespace", "") == target.namespace
        and "Ingress" in ((d.get("spec") or {}).get("policyTypes") or ["Ingress"])
        and selector_matches((d.get("spec") or {}).get("podSelector") or {}, target.labels)
    ]  # fmt: skip
    if not policies:
        return True
    for policy in policies:
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            peers = rule.get("from")
            if (not peers or any(_peer_admitted(p, peer, own) for p in peers)) and _port_admitted(
                rule, port, target
            ):
                return True
    return False


def _quantities_set(c: Mapping[str, Any]) -> bool:
    res = c.get("resources") or {}
    return all(k in (res.get(part) or {}) for part in ("requests", "limits") for k in ("cpu", "memory"))


def _container_rules(w: Workload, c: Mapping[str, Any]) -> Iterator[str]:
    where = f"{w.kind}/{w.name} container {c.get('name')}"
    image = str(c.get("image", ""))
    tag = image.rpartition("/")[2].partition("@")[0]
    if ":" not in tag or tag.endswith(":latest"):
        yield f"{where}: image {image!r} has no pinned tag"
    if not _quantities_set(c):
        yield f"{where}: needs cpu and memory requests and limits"
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        yield f"{where}: allowPrivilegeEscalation must be false"
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        yield f"{where}: must drop ALL capabilities"
    if sc.get("readOnlyRootFilesystem") is not True and WRITABLE_ROOT not in w.annotations:
        yield f"{where}: readOnlyRootFilesystem must be true (or say why in the {WRITABLE_ROOT} annotation)"
    http = [p for p in c.get("ports") or [] if p.get("name") == "http"]
    if http and not (c.get("readinessProbe") and c.get("livenessProbe")):
        yield f"{where}: serves HTTP without readiness and liveness probes"


def _pod_rules(w: Workload) -> Iterator[str]:
    sc = w.pod.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") in (None, 0):
        yield f"{w.kind}/{w.name}: the pod must run as a non-root user (runAsNonRoot, runAsUser)"
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        yield f"{w.kind}/{w.name}: seccompProfile RuntimeDefault is required"
    for c in [*(w.pod.get("initContainers") or []), *w.containers]:
        yield from _container_rules(w, c)


def _names(docs: Sequence[Doc], kind: str) -> set[str]:
    return {_meta(d).get("name", "") for d in docs if d.get("kind") == kind}


def _secret_refs(pod: Mapping[str, Any]) -> Iterator[str]:
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        for e in c.get("env") or []:
            ref = ((e.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if ref:
                yield f"{ref['name']}/{ref['key']}"
        for src in c.get("envFrom") or []:
            if "secretRef" in src:
                yield f"{src['secretRef']['name']}/*"
    for v in pod.get("volumes") or []:
        if "secret" in v:
            yield f"{v['secret']['secretName']}/*"


def _reference_rules(docs: Sequence[Doc], pods: list[Workload]) -> Iterator[str]:
    services = {str(_meta(d).get("name")): d for d in docs if d.get("kind") == "Service"}
    for name, svc in services.items():
        sel = (svc.get("spec") or {}).get("selector") or {}
        if not any(selector_matches({"matchLabels": sel}, w.labels) for w in pods):
            yield f"Service/{name}: its selector {sel} matches no pod template"
    targets = {(d.get("kind"), _meta(d).get("name")) for d in docs}
    for d in docs:
        spec, name = d.get("spec") or {}, f"{d.get('kind')}/{_meta(d).get('name')}"
        if d.get("kind") == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in targets:
                yield f"{name}: scales {ref['kind']}/{ref['name']}, which does not exist"
        if d.get("kind") == "PodDisruptionBudget" and not any(
            selector_matches(spec.get("selector"), w.labels) for w in pods
        ):
            yield f"{name}: its selector matches no pod template"
        if d.get("kind") == "Ingress":
            yield from _ingress_rules(name, spec, services)
        if d.get("kind") in ("ServiceMonitor", "PodMonitor"):
            yield from _monitor_rules(d, services, pods)


def _ingress_rules(name: str, spec: Mapping[str, Any], services: Mapping[str, Doc]) -> Iterator[str]:
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            backend = path["backend"]["service"]
            svc = services.get(backend["name"])
            ports = [p.get("name") for p in ((svc or {}).get("spec") or {}).get("ports") or []]
            if svc is None or backend["port"].get("name", ports[0] if ports else None) not in ports:
                yield f"{name}: backend {backend['name']}:{backend['port']} is no Service port"


def _monitor_rules(d: Doc, services: Mapping[str, Doc], pods: list[Workload]) -> Iterator[str]:
    name, spec = f"{d['kind']}/{_meta(d).get('name')}", d.get("spec") or {}
    if d["kind"] == "ServiceMonitor":
        hits = [
            s
            for s in services.values()
            if selector_matches(spec.get("selector"), _meta(s).get("labels") or {})
        ]
        ports = {p.get("name") for s in hits for p in (s.get("spec") or {}).get("ports") or []}
        wanted = {e.get("port") for e in spec.get("endpoints") or []}
    else:
        hits_w = [w for w in pods if selector_matches(spec.get("selector"), w.labels)]
        ports = {n for w in hits_w for n in w.port_names()}
        wanted = {e.get("port") for e in spec.get("podMetricsEndpoints") or []}
        hits = hits_w  # type: ignore[assignment]
    if len(hits) != 1:
        yield f"{name}: selects {len(hits)} targets, expected exactly one"
    if not wanted <= ports:
        yield f"{name}: scrapes port(s) {sorted(map(str, wanted - ports))} its targets do not name"


def _object_refs(docs: Sequence[Doc], pods: list[Workload]) -> Iterator[str]:
    config_maps, claims, accounts = (
        _names(docs, "ConfigMap"),
        _names(docs, "PersistentVolumeClaim"),
        _names(docs, "ServiceAccount"),
    )
    for w in pods:
        where = f"{w.kind}/{w.name}"
        for c in w.containers:
            for src in c.get("envFrom") or []:
                if "configMapRef" in src and src["configMapRef"]["name"] not in config_maps:
                    yield f"{where}: ConfigMap {src['configMapRef']['name']} does not exist"
        for v in w.pod.get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and claim not in claims:
                yield f"{where}: claim {claim} does not exist"
        account = w.pod.get("serviceAccountName")
        if account is not None and account not in accounts:
            yield f"{where}: service account {account} does not exist"


def _policy_rules(docs: Sequence[Doc]) -> Iterator[str]:
    """An allow policy names the pods it opens: an empty podSelector would open them all (only a deny may)."""
    for d in docs:
        spec = d.get("spec") or {}
        if (
            d.get("kind") == "NetworkPolicy"
            and spec.get("ingress")
            and not _selects_some(spec.get("podSelector"))
        ):
            name = _meta(d).get("name")
            yield f"NetworkPolicy/{name}: an allow rule with an empty podSelector opens every pod"


def _selects_some(selector: Mapping[str, Any] | None) -> bool:
    return bool(selector and (selector.get("matchLabels") or selector.get("matchExpressions")))


def house_rules(docs: Sequence[Doc], documented_secrets: set[str] | None = None) -> list[str]:
    """Every breach of the rules above in ``docs`` (one rendered environment), as readable lines."""
    pods = workloads(docs)
    errors = [
        f"Secret/{_meta(d).get('name')}: secrets are referenced, never committed"
        for d in docs
        if d.get("kind") == "Secret"
    ]
    errors += list(_policy_rules(docs))
    for w in pods:
        errors += list(_pod_rules(w))
        if documented_secrets is not None:
            missing = [r for r in _secret_refs(w.pod) if r not in documented_secrets]
            errors += [
                f"{w.kind}/{w.name}: secret {r} is not documented in deploy/k8s/secrets.yaml" for r in missing
            ]
    return errors + list(_reference_rules(docs, pods)) + list(_object_refs(docs, pods))


def _policies_for(docs: Sequence[Doc], w: Workload) -> list[str]:
    return sorted(
        _meta(d)["name"] for d in docs
        if d.get("kind") == "NetworkPolicy" and _meta(d).get("namespace", "") == w.namespace
        and selector_matches((d.get("spec") or {}).get("podSelector") or {}, w.labels)
    )  # fmt: skip


def workload_table(docs: Sequence[Doc]) -> list[dict[str, Any]]:
    """One row per container: image, replicas, requests / limits, probes, the policies that select it."""
    rows = []
    for w in workloads(docs):
        for c in w.containers:
            res = c.get("resources") or {}
            probes = {
                k.removesuffix("Probe"): _probe(c[k])
                for k in ("startupProbe", "readinessProbe", "livenessProbe")
                if k in c
            }
            rows.append({
                "workload": f"{w.kind}/{w.name}", "container": c.get("name"), "image": c.get("image"),
                "replicas": w.replicas, "requests": res.get("requests") or {},
                "limits": res.get("limits") or {}, "probes": probes,
                "network_policies": _policies_for(docs, w),
                "read_only_root": (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is True,
            })  # fmt: skip
    return rows


def _probe(probe: Mapping[str, Any]) -> str:
    if "httpGet" in probe:
        return f"GET {probe['httpGet'].get('path', '/')}"
    if "tcpSocket" in probe:
        return f"tcp {probe['tcpSocket'].get('port')}"
    if "exec" in probe:
        return " ".join(map(str, probe["exec"].get("command") or []))
    return "grpc"
