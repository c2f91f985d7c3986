"""Submitting the promotion pipeline to an Argo server through the ``argo-workflows`` client (Server API).

``submit`` creates a Workflow from the cluster's ``replayrec-promotion`` WorkflowTemplate (``argo/rendered/``,
applied to the cluster by the deployment) with the plugin and dataset as parameters and labels that find it
again; ``status`` reads one workflow (or the plugin's newest) with its phase and the phase of every step. The
server address and the bearer token come from the settings (``REPLAYREC_ARGO_SERVER``,
``REPLAYREC_ARGO_TOKEN``), never from the repository.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.infra._terraform import InfraError

__all__ = ["PROMOTION_TEMPLATE", "ArgoRun", "argo_status", "argo_submit"]

PROMOTION_TEMPLATE = "replayrec-promotion"
RETRAIN_CRON_PREFIX = "replayrec-retrain-"  # + plugin: the CronWorkflows of argo/workflows.py
PLUGINS = ("lightgcn", "din", "ranknet")  # the template's `plugin` parameter enum (argo/workflows.py)
_LABEL = "replayrec.io/plugin"


@dataclass(frozen=True)
class ArgoRun:
    """A workflow as the server reports it: name, phase, times, and each step's phase."""

    name: str
    namespace: str
    plugin: str | None
    phase: str
    started_at: str | None
    finished_at: str | None
    message: str | None
    steps: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, wf: Mapping[str, Any]) -> ArgoRun:
        meta = wf.get("metadata") or {}
        status = wf.get("status") or {}
        steps = {
            str(n.get("displayName") or n.get("name")): str(n.get("phase", ""))
            for n in (status.get("nodes") or {}).values()
            if n.get("type") in ("Pod", "Suspend", "Skipped")
        }
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            plugin=(meta.get("labels") or {}).get(_LABEL),
            phase=str(status.get("phase") or "Pending"),
            started_at=status.get("startedAt"),
            finished_at=status.get("finishedAt"),
            message=status.get("message"),
            steps=dict(sorted(steps.items())),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _api(settings: Settings) -> Any:
    import argo_workflows
    from argo_workflows.api import workflow_service_api

    if not settings.argo_server:
        raise ConfigError(
            "no Argo server: set REPLAYREC_ARGO_SERVER (e.g. https://argo.replayrec.internal:2746)"
        )
    config = argo_workflows.Configuration(host=settings.argo_server.rstrip("/"))
    config.verify_ssl = settings.argo_verify_tls
    config.discard_unknown_keys = True  # a newer server's extra fields are not an error
    token = settings.argo_token.get_secret_value() if settings.argo_token else None
    client = argo_workflows.ApiClient(
        config,
        header_name="Authorization" if token else None,
        header_value=f"Bearer {token}" if token else None,
    )
    return workflow_service_api.WorkflowServiceApi(client)


def _call(what: str, fn: Any) -> dict[str, Any]:
    """Run one API call with ``_preload_content=False`` and return the server's JSON as sent (camelCase)."""
    import urllib3
    from argo_workflows import exceptions

    try:
        response = fn()
        document: dict[str, Any] = json.loads(response.data or b"{}")
        return document
    except exceptions.ApiException as exc:
        detail = (exc.body or "").strip()[:300]
        raise InfraError(f"Argo server {what}: HTTP {exc.status} {exc.reason}: {detail}") from exc
    except (
        urllib3.exceptions.HTTPError
    ) as exc:  # connection refused, TLS, timeouts (after the client's retries)
        raise InfraError(f"Argo server {what}: cannot reach it ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InfraError(f"Argo server {what}: the answer is not JSON ({exc})") from exc


def argo_submit(
    settings: Settings,
    plugin: str,
    *,
    dataset: str | None = None,
    parameters: Mapping[str, str] | None = None,
    from_cron: bool = False,
) -> ArgoRun:
    """Submit the promotion template for ``plugin``; returns the created workflow. ``from_cron``: submit the
    plugin's retraining CronWorkflow (``replayrec-retrain-<plugin>``) now instead — what its schedule would
    run, with its arguments (the monitor's retraining on alert)."""
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_submit_opts import (
        IoArgoprojWorkflowV1alpha1SubmitOpts,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_submit_request import (
        IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest,
    )

    if plugin not in PLUGINS:
        raise ConfigError(
            f"unknown plugin {plugin!r} for {PROMOTION_TEMPLATE}; available: {', '.join(PLUGINS)}"
        )
    params = {"plugin": plugin, **({"dataset": dataset} if dataset else {}), **dict(parameters or {})}
    if params["plugin"] != plugin:
        raise ConfigError("the plugin is the command's argument, not a --param")
    body = IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest(
        namespace=settings.argo_namespace,
        resource_kind="CronWorkflow" if from_cron else "WorkflowTemplate",
        resource_name=f"{RETRAIN_CRON_PREFIX}{plugin}" if from_cron else PROMOTION_TEMPLATE,
        submit_options=IoArgoprojWorkflowV1alpha1SubmitOpts(
            generate_name=f"{RETRAIN_CRON_PREFIX}{plugin}-"
            if from_cron
            else f"{PROMOTION_TEMPLATE}-{plugin}-",
            labels=f"{_LABEL}={plugin}",
            parameters=[f"{k}={v}" for k, v in params.items()],
        ),
    )
    api = _api(settings)
    created = _call(
        "submit", lambda: api.submit_workflow(settings.argo_namespace, body, _preload_content=False)
    )
    return ArgoRun.from_api(created)


def argo_status(settings: Settings, *, name: str | None = None, plugin: str | None = None) -> ArgoRun:
    """One workflow by ``name``, else the newest promotion run of ``plugin``."""
    api = _api(settings)
    ns = settings.argo_namespace
    if name:
        return ArgoRun.from_api(
            _call("get workflow", lambda: api.get_workflow(ns, name, _preload_content=False))
        )
    if plugin not in PLUGINS:
        raise ConfigError(f"give a workflow name or a plugin ({', '.join(PLUGINS)})")
    listed = _call(
        "list workflows",
        lambda: api.list_workflows(
            ns, list_options_label_selector=f"{_LABEL}={plugin}", _preload_content=False
        ),
    )
    items = listed.get("items") or []
    if not items:
        raise InfraError(f"no {PROMOTION_TEMPLATE} run for {plugin} in namespace {ns}")
    newest = max(items, key=lambda wf: str((wf.get("metadata") or {}).get("creationTimestamp", "")))
    return ArgoRun.from_api(newest)
