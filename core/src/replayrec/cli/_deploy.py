"""``replayrec deploy …``: the offline checks of the deployment (manifests, Dockerfiles, playbooks, the
delivery workflow), the rendered environments and their workload table, image builds without a Docker engine,
and the load test's gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from replayrec import infra
from replayrec.cli._common import echo_json, info, json_option, settings_of
from replayrec.cli._infra import report_steps
from replayrec.config import Settings
from replayrec.registry import git_commit

__all__ = ["deploy_group"]


@click.group("deploy")
def deploy_group() -> None:
    """The deployment: Kubernetes manifests (deploy/k8s), Argo CD applications (deploy/argocd)."""


def _root(settings: Settings) -> Path:
    return settings.infra_dir.parent


_PARTS = ("manifests", "images", "playbooks", "delivery")


@deploy_group.command("check")
@click.option("--only", type=click.Choice(_PARTS), multiple=True, help="check only these parts (repeatable)")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, only: tuple[str, ...], as_json: bool) -> None:
    """Offline checks, exit 1 on any finding: every environment rendered with kubectl kustomize and validated
    (kubernetes-validate --strict, custom resources against their CRDs, the house rules); the Dockerfiles
    (hadolint and replayrec's rules); the playbooks (ansible-lint's production profile, the syntax check);
    the delivery workflow (actionlint with ShellCheck, its job chain and the commands its steps run)."""
    settings, parts = settings_of(ctx), set(only or _PARTS)
    steps = infra.check_manifests(settings) if "manifests" in parts else []
    steps += infra.lint_dockerfiles(settings, _root(settings)) if "images" in parts else []
    steps += infra.lint_playbooks(settings) if "playbooks" in parts else []
    steps += infra.check_delivery(settings) if "delivery" in parts else []
    report_steps(steps, as_json)


@deploy_group.command("build")
@click.argument("names", nargs=-1, type=click.Choice([s.name for s in infra.IMAGES]))
@click.option("--tag", help="image tag (default: <registry>/replayrec-<name>:<package version>)")
@click.option("--registry", default=infra.DEFAULT_REGISTRY, show_default=True,
              help="the registry of the default tags (host[:port][/path])")  # fmt: skip
@click.option("--extra-tag", "extra_tags", multiple=True, metavar="LABEL",
              help="also tag <registry>/replayrec-<name>:LABEL (GPU: LABEL-cu128), e.g. a sha")  # fmt: skip
@click.option("--push", is_flag=True, help="push every tag (buildah push; credentials from buildah login)")
@click.option("--local-base", is_flag=True, help="build on a debootstrapped Debian 12 (no Docker Hub needed)")
@click.option("--smoke", is_flag=True, help="then run the service image read-only as 10001 and probe it")
@json_option
@click.pass_context
def build_cmd(
    ctx: click.Context, names: tuple[str, ...], tag: str | None, registry: str, extra_tags: tuple[str, ...],
    push: bool, local_base: bool, smoke: bool, as_json: bool,
) -> None:  # fmt: skip
    """Build images with buildah (no Docker engine; needs root) from deploy/docker (default: service)."""
    settings, root = settings_of(ctx), _root(settings_of(ctx))
    base = infra.local_base_image() if local_base else None
    results: list[dict[str, Any]] = []
    for name in names or ("service",):
        spec = infra.image_spec(name)
        also = [spec.tag(root, registry, label) for label in extra_tags]
        built = infra.build_image(
            spec, root, tag=tag or spec.tag(root, registry), base_image=base,
            build_args={"GIT_COMMIT": git_commit()}, also=also,
        )  # fmt: skip
        row: dict[str, Any] = {
            "image": name,
            "tag": built.tag,
            "also": list(built.also),
            "mb": round(built.size_bytes / 1e6, 1),
            "seconds": built.seconds,
        }
        if smoke and name == "service":
            row["smoke"] = infra.smoke_test_image(built.tag, settings, settings.state_dir / "image-smoke")
        for pushed in (built.tag, *built.also) if push else ():
            infra.push_image(pushed)
        row["pushed"] = push
        results.append(row)
        if not as_json:
            info(
                f"{built.tag}: {row['mb']} MB in {built.seconds} s"
                + (f"; smoke {row['smoke']}" if "smoke" in row else "")
            )
    if as_json:
        echo_json({"images": results})


@deploy_group.command("render")
@click.argument("env")
@click.option("--overlay-only", is_flag=True,
              help="only ENV's own overlay, not the ones it is deployed beside (what to apply)")  # fmt: skip
@click.option("--image-tag", metavar="LABEL",
              help="pin the project's images at <registry>/replayrec-<name>:LABEL (a build)")  # fmt: skip
@click.option("--registry", default=infra.DEFAULT_REGISTRY, show_default=True,
              help="with --image-tag: the registry the images were pushed to")  # fmt: skip
@click.pass_context
def render_cmd(
    ctx: click.Context, env: str, overlay_only: bool, image_tag: str | None, registry: str
) -> None:
    """The manifests that land in ENV's namespace (staging, canary — with prod beside it — or prod)."""
    docs = infra.environment_documents(settings_of(ctx), env, beside=not overlay_only)
    if image_tag is not None:
        docs = infra.pin_project_images(docs, image_tag, registry)
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


@deploy_group.command("load-gate")
@click.argument("result", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--min-qps", type=click.FloatRange(min=0), default=50.0, show_default=True)
@click.option("--max-p99-ms", type=click.FloatRange(min=0, min_open=True), default=200.0, show_default=True)
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.001, show_default=True)
@click.option("--scenario", "scenarios", multiple=True, default=("uncached",), show_default=True,
              help="the scenarios held to the thresholds (repeatable)")  # fmt: skip
@json_option
def load_gate_cmd(
    result: Path, min_qps: float, max_p99_ms: float, max_error_rate: float, scenarios: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """The load test's gate: RESULT (``replayrec bench serve --json --out``) against the thresholds (the
    seed's: at least 50 QPS with p99 under 200 ms, uncached); exit 1 when a scenario misses one."""
    try:
        doc = json.loads(result.read_text())
    except json.JSONDecodeError as exc:
        raise infra.InfraError(f"{result} is not JSON: {exc}") from None
    checks = infra.load_gate(doc, min_qps=min_qps, max_p99_ms=max_p99_ms, max_error_rate=max_error_rate,
                             scenarios=scenarios)  # fmt: skip
    if as_json:
        echo_json({"passed": all(c.passed for c in checks), "checks": [vars(c) for c in checks]})
    for c in [] if as_json else checks:
        click.echo(f"{'ok  ' if c.passed else 'FAIL'} {c.scenario}: {c.detail}")
    if not all(c.passed for c in checks):
        sys.exit(1)


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


@deploy_group.command("nodes")
@click.option("--root", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="the host's root directory (empty: debootstrap makes a Debian 12 root there)")  # fmt: skip
@click.option("--name", default="node-1", show_default=True, help="the host's inventory name")
@click.option("--group", "groups", multiple=True, required=True, type=click.Choice(infra.INVENTORY_GROUPS),
              help="inventory group (repeatable): --group k8s_control_plane --group storage")  # fmt: skip
@click.option("--vars", "var_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="extra variables (YAML or JSON: the k3s token, k3s_binary_src, ...)")  # fmt: skip
@click.option("--twice", is_flag=True, help="run again and fail unless the second run changes nothing")
@json_option
@click.pass_context
def nodes_cmd(
    ctx: click.Context, root: Path, name: str, groups: tuple[str, ...], var_file: Path | None, twice: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Apply the machine plays of playbooks/site.yml (tag node) for real to a Debian root through Ansible's
    chroot connection (needs root; nothing is started or mounted: replayrec_booted_host is false)."""
    settings = settings_of(ctx)
    if not root.exists() or not any(root.iterdir()):
        infra.debootstrap_root(infra.deploy_cache_dir(), root)
    variables = {"replayrec_booted_host": False, **(yaml.safe_load(var_file.read_text()) if var_file else {})}
    host = infra.ChrootHost(name, root.resolve(), groups)
    runs = []
    for attempt in range(2 if twice else 1):
        work = settings.state_dir / "ansible" / f"{name}-{attempt + 1}"
        runs.append(infra.apply_to_roots(settings, [host], work, extra_vars=variables))
    rows = [
        {"run": i + 1, "ok": r.ok, "seconds": r.seconds, "changed_tasks": r.changed_tasks,
         "recap": {h: vars(c) for h, c in r.recap.items()}}
        for i, r in enumerate(runs)
    ]  # fmt: skip
    if as_json:
        echo_json({"host": name, "runs": rows})
    for row in [] if as_json else rows:
        info(f"run {row['run']}: {'ok' if row['ok'] else 'FAILED'} in {row['seconds']} s; {row['recap']}")
    failed = not all(r.ok for r in runs) or (twice and runs[-1].changed_tasks)
    if failed:
        raise SystemExit(1)
