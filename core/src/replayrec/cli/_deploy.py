"""``replayrec deploy …``: the Kubernetes manifests (render, check, the workload table)."""

from __future__ import annotations

from typing import Any

import click
import yaml

from replayrec import infra
from replayrec.cli._common import echo_json, json_option, settings_of
from replayrec.cli._infra import report_steps

__all__ = ["deploy_group"]


@click.group("deploy")
def deploy_group() -> None:
    """The deployment: Kubernetes manifests (deploy/k8s), Argo CD applications (deploy/argocd)."""


@deploy_group.command("check")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """Render every environment with kubectl kustomize and validate it offline: built-in kinds with
    kubernetes-validate --strict, custom resources against their CRDs, the house rules. Exit 1 on failure."""
    report_steps(infra.check_manifests(settings_of(ctx)), as_json)


@deploy_group.command("render")
@click.argument("env")
@click.pass_context
def render_cmd(ctx: click.Context, env: str) -> None:
    """The manifests that land in ENV's namespace (staging, canary — with prod beside it — or prod)."""
    docs = infra.environment_documents(settings_of(ctx), env)
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


def _quantities(q: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in q.items()) or "-"


@deploy_group.command("workloads")
@click.argument("env")
@json_option
@click.pass_context
def workloads_cmd(ctx: click.Context, env: str, as_json: bool) -> None:
    """ENV's containers: image, replicas, requests / limits, probes, the NetworkPolicies selecting them."""
    rows = infra.workload_table(infra.environment_documents(settings_of(ctx), env))
    if as_json:
        echo_json({"env": env, "workloads": rows})
        return
    for r in rows:
        probes = ", ".join(f"{k}: {v}" for k, v in r["probes"].items()) or "-"
        click.echo(f"{r['workload']} [{r['container']}] {r['image']} x{r['replicas']}")
        click.echo(f"    requests {_quantities(r['requests'])}; limits {_quantities(r['limits'])}")
        click.echo(f"    probes {probes}; policies {', '.join(r['network_policies'])}")
