"""The Kubernetes manifests (``deploy/``): rendered with ``kubectl kustomize`` and validated offline.

Built-in kinds are checked by ``kubernetes-validate --strict`` against the Kubernetes version the clusters run
(k3s, ``KUBERNETES_VERSION``); custom resources against the JSON schemas extracted from their CRDs
(``../shared/schemas/k8s-crds/json/<group>/<kind>_<version>.json``: Argo CD, Prometheus Operator, KubeRay). A
kind with no schema is an error, never a skip. Then the house rules (``replayrec.infra._k8s_rules``).

An environment is what one ``kubectl apply`` set lands in a namespace beside: ``staging`` and ``prod`` are
their overlays; ``canary`` is checked together with ``prod``, whose namespace, volumes and secrets it shares.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from replayrec.config import Settings
from replayrec.infra._check import CheckStep, deploy_tool
from replayrec.infra._k8s_rules import house_rules
from replayrec.infra._terraform import InfraError

__all__ = [
    "CUSTOM_GROUPS",
    "KUBERNETES_VERSION",
    "check_manifests",
    "crd_schema_dir",
    "deploy_dir",
    "deploy_environments",
    "documented_secrets",
    "environment_documents",
    "render_kustomization",
    "validate_builtin",
    "validate_custom",
]

KUBERNETES_VERSION = "1.35"  # the k3s minor the playbooks install (playbooks/roles/k3s)
CUSTOM_GROUPS = ("argoproj.io", "monitoring.coreos.com", "ray.io")
_BESIDE = {"canary": ("prod",)}  # environments deployed into another's namespace, checked together
_VALIDATE_LINE = re.compile(r"^(INFO|WARN|ERROR) (\S+) (.*)$")


def deploy_dir(settings: Settings) -> Path:
    """``deploy/`` beside ``infra/``: ``k8s/base``, ``k8s/overlays/<env>``, ``k8s/jobs``, ``argocd``."""
    return settings.infra_dir.parent / "deploy"


def crd_schema_dir(settings: Settings) -> Path:
    """The CRD JSON schemas (``../shared/schemas/k8s-crds/json``, beside the data directory)."""
    return settings.data_dir.parent / "schemas" / "k8s-crds" / "json"


def documented_secrets(settings: Settings) -> set[str]:
    """``<secret>/<key>`` for every key ``deploy/k8s/secrets.yaml`` documents (and ``<secret>/*``)."""
    path = deploy_dir(settings) / "k8s" / "secrets.yaml"
    doc = yaml.safe_load(path.read_text()) if path.is_file() else None
    if not isinstance(doc, dict):
        raise InfraError(f"{path}: expected a mapping of secret name → {{description, keys}}")
    return {f"{name}/{key}" for name, body in doc.items() for key in [*(body.get("keys") or {}), "*"]}


def deploy_environments(settings: Settings) -> list[str]:
    """The overlays under ``deploy/k8s/overlays``, sorted."""
    root = deploy_dir(settings) / "k8s" / "overlays"
    return sorted(p.name for p in root.iterdir() if (p / "kustomization.yaml").is_file())


def render_kustomization(settings: Settings, target: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of one kustomization folder; the documents, in kustomize's order."""
    cmd = [
        str(deploy_tool(settings, "kubectl")),
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        str(target),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise InfraError(f"kubectl kustomize {target} failed: {proc.stderr.strip()[-2000:]}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def environment_documents(settings: Settings, env: str, *, beside: bool = True) -> list[dict[str, Any]]:
    """What lands in ``env``'s namespace: its overlay, after the overlays it is deployed beside (unless
    ``beside`` is false: then the overlay alone, what applying ``env`` adds to that namespace)."""
    overlays = deploy_dir(settings) / "k8s" / "overlays"
    if not (overlays / env / "kustomization.yaml").is_file():
        raise InfraError(f"no overlay {env!r}: choose one of {', '.join(deploy_environments(settings))}")
    docs: list[dict[str, Any]] = []
    for name in (*(_BESIDE.get(env, ()) if beside else ()), env):
        docs += render_kustomization(settings, overlays / name)
    return docs


def _group(doc: dict[str, Any]) -> str:
    group, _, _version = str(doc.get("apiVersion", "")).rpartition("/")
    return group


def _name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name') or meta.get('generateName') or '?'}"


def validate_builtin(
    settings: Settings, docs: Sequence[dict[str, Any]], version: str = KUBERNETES_VERSION
) -> list[str]:
    """``kubernetes-validate --strict`` on the built-in kinds of ``docs``: its errors, plus one for every
    document it found no schema for (it only warns) or did not report as passed."""
    if not docs:
        return []
    tool = deploy_tool(settings, "kubernetes-validate")
    with tempfile.TemporaryDirectory(prefix="replayrec-k8s-") as tmp:
        path = Path(tmp) / "manifests.yaml"
        path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
        cmd = [str(tool), "--strict", "--kubernetes-version", version, str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    errors, passed = [], 0
    for line in (proc.stdout + proc.stderr).splitlines():
        m = _VALIDATE_LINE.match(line.strip())
        if m is None:
            continue
        level, rest = m[1], m[3]
        if level == "INFO" and rest.startswith("passed"):
            passed += 1
        elif level in ("WARN", "ERROR"):
            errors.append(rest)
    if passed != len(docs) and not errors:
        errors.append(
            f"kubernetes-validate passed {passed} of {len(docs)} documents (exit {proc.returncode})"
        )
    return errors


@functools.cache
def _schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text())
    if path.name == "prometheusrule_v1.json":  # a Go-only inline flag (PROVENANCE.md, quirk 1)
        groups = schema["properties"]["spec"]["properties"]["groups"]["items"]["properties"]
        groups["partial_response_strategy"]["pattern"] = "(?i)^(abort|warn)?$"
    return schema


def _schema_errors(doc: dict[str, Any], schema_dir: Path) -> list[str]:
    from jsonschema import Draft4Validator

    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    path = schema_dir / group / f"{str(doc.get('kind', '')).lower()}_{version}.json"
    if not path.is_file():
        return [f"{_name(doc)}: no schema for {doc.get('apiVersion')} {doc.get('kind')} (looked for {path})"]
    found = Draft4Validator(_schema(path)).iter_errors(doc)
    return [f"{_name(doc)}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]


def _cel_rules(doc: dict[str, Any]) -> list[str]:
    """The create-time CEL rules of the KubeRay CRDs that JSON Schema cannot express (PROVENANCE.md)."""
    spec = doc.get("spec") or {}
    errors = []
    for owner in (spec, spec.get("rayClusterSpec") or {}):
        managed = owner.get("managedBy")
        if managed is not None and managed not in ("ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"):
            errors.append(f"{_name(doc)}: managedBy {managed!r} is not one KubeRay accepts")
    if doc.get("kind") == "RayJob" and "clusterSelector" in spec and "rayClusterSpec" in spec:
        errors.append(f"{_name(doc)}: a RayJob names either clusterSelector or rayClusterSpec, not both")
    strategy = spec.get("deletionStrategy") or {}
    if strategy and ("deletionRules" in strategy) == bool({"onSuccess", "onFailure"} & set(strategy)):
        errors.append(f"{_name(doc)}: deletionStrategy needs onSuccess + onFailure or deletionRules")
    return errors


def validate_custom(docs: Iterable[dict[str, Any]], schema_dir: Path) -> list[str]:
    """Every custom resource of ``docs`` against its CRD's JSON schema (Draft 4, as kubeconform does)."""
    errors: list[str] = []
    for doc in docs:
        errors += _schema_errors(doc, schema_dir) + _cel_rules(doc)
    return errors


def _validation_step(
    settings: Settings, target: str, docs: list[dict[str, Any]], beside: Sequence[dict[str, Any]] = ()
) -> CheckStep:
    """Schemas for ``docs``; the house rules for ``docs`` with what they are deployed ``beside`` (validated
    in its own step), whose objects they refer to."""
    started = time.monotonic()
    custom = [d for d in docs if _group(d) in CUSTOM_GROUPS]
    builtin = [d for d in docs if _group(d) not in CUSTOM_GROUPS]
    errors = validate_builtin(settings, builtin) + validate_custom(custom, crd_schema_dir(settings))
    errors += house_rules([*beside, *docs], documented_secrets(settings))
    numbers = {"documents": len(docs), "builtin": len(builtin), "custom": len(custom), "errors": len(errors)}
    detail = "\n".join(errors) if errors else f"{len(docs)} documents valid (Kubernetes {KUBERNETES_VERSION})"
    return CheckStep("manifests", target, not errors, round(time.monotonic() - started, 2), detail, numbers)


def check_manifests(settings: Settings) -> list[CheckStep]:
    """Render and validate every environment, the Argo CD applications and the one-off jobs."""
    root = deploy_dir(settings)
    if not crd_schema_dir(settings).is_dir():
        raise InfraError(f"no CRD schemas at {crd_schema_dir(settings)} (../shared/schemas/k8s-crds)")
    envs = deploy_environments(settings)
    renders = {env: render_kustomization(settings, root / "k8s" / "overlays" / env) for env in envs}
    steps = [
        _validation_step(
            settings, f"k8s/{env}", renders[env], [d for b in _BESIDE.get(env, ()) for d in renders[b]]
        )
        for env in envs
    ]
    steps.append(_validation_step(settings, "argocd", render_kustomization(settings, root / "argocd")))
    jobs = [
        d
        for p in sorted((root / "k8s" / "jobs").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]
    steps.append(_validation_step(settings, "k8s/jobs", jobs))
    return steps
