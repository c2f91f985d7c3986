"""``replayrec infra …``: Terraform for Chameleon Cloud, its offline checks, the inventory, the GPU lease."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from replayrec import infra
from replayrec.cli._common import echo_json, info, json_option, settings_of
from replayrec.errors import ConfigError

__all__ = ["argo_group", "infra_group", "report_steps"]

env_option = click.option(
    "--env", "env", required=True, help="environment under infra/envs (dev, prod, bootstrap)"
)
yes_option = click.option("--yes", is_flag=True, help="do not ask for confirmation")
var_file_option = click.option(
    "--var-file", "var_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="extra variables file (terraform.tfvars and *.auto.tfvars[.json] load on their own; repeatable)",
)  # fmt: skip
var_option = click.option(
    "--var", "variables", multiple=True, metavar="KEY=VALUE", help="one variable (repeatable)"
)
cloud_option = click.option(
    "--cloud", envvar="OS_CLOUD", default="chi_tacc", show_default=True,
    help="clouds.yaml entry of the lease's site [env OS_CLOUD]",
)  # fmt: skip


def _pairs(variables: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in variables:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--var {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _confirm(yes: bool) -> Callable[[str], bool]:
    def ask(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise ConfigError(f"{question} needs confirmation: run it in a terminal or pass --yes")
        return click.confirm(question, default=False)

    return ask


@click.group("infra")
def infra_group() -> None:
    """Provision Chameleon Cloud with Terraform (infra/envs/<env>), check it offline, manage the GPU lease."""


@infra_group.command("check")
@click.option("--no-scan", is_flag=True, help="skip the checkov scan")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, no_scan: bool, as_json: bool) -> None:
    """Offline checks of every module and environment: fmt, init + validate against the schema-only OpenStack
    provider stub, terraform test with mocked providers, and a checkov scan. Exit status 1 when one fails."""
    report_steps(infra.check_offline(settings_of(ctx), with_scan=not no_scan), as_json)


def report_steps(steps: list[infra.CheckStep], as_json: bool) -> None:
    """Print check steps (a line each, the detail of a failed one) or their JSON; exit 1 when one failed."""
    if as_json:
        echo_json({"ok": all(s.ok for s in steps), "steps": infra.steps_as_dicts(steps)})
    else:
        for s in steps:
            numbers = " ".join(f"{k}={v}" for k, v in s.numbers.items())
            click.echo(
                f"{'ok  ' if s.ok else 'FAIL'} {s.step:<12} {s.target:<34} {s.seconds:>6.1f}s {numbers}"
            )
            if not s.ok:
                click.echo("     " + s.detail.replace("\n", "\n     "))
    if not all(s.ok for s in steps):
        sys.exit(1)


@infra_group.command("footprint")
@env_option
@var_file_option
@var_option
@json_option
@click.pass_context
def footprint_cmd(
    ctx: click.Context, env: str, var_files: tuple[Path, ...], variables: tuple[str, ...], as_json: bool
) -> None:
    """What the environment would create, by resource type: planned offline with mocked providers (the
    variables: --var-file / --var, else the environment's example.tfvars)."""
    result = infra.footprint(settings_of(ctx), env, var_files=var_files, variables=_pairs(variables))
    if as_json:
        echo_json(result)
        return
    for kind, count in result["resources"].items():
        click.echo(f"{count:>4}  {kind}")
    reads = result["data_sources"]
    click.echo(f"{result['total']:>4}  resources in {env}; data sources read during apply: {reads}")


@infra_group.command("init")
@env_option
@click.option("--no-backend", is_flag=True, help="skip the remote state backend (-backend=false)")
@click.pass_context
def init_cmd(ctx: click.Context, env: str, no_backend: bool) -> None:
    """terraform init, with the environment's backend.hcl (Chameleon's object store) unless --no-backend."""
    infra.TerraformEnv(settings_of(ctx), env).init(backend=not no_backend, stream=True)


@infra_group.command("validate")
@env_option
@click.option("--stub", is_flag=True, help="validate against the schema-only provider stub (offline)")
@json_option
@click.pass_context
def validate_cmd(ctx: click.Context, env: str, stub: bool, as_json: bool) -> None:
    """terraform validate (after init -backend=false); errors name file and line."""
    settings = settings_of(ctx)
    if stub:  # on a copy of the tree: the stub's lock file must not land in infra/envs/<env>
        infra.TerraformEnv(settings, env)  # the environment must exist
        folder = infra.check_tree(settings) / "envs" / env
        data_dir = settings.state_dir / "infra" / "tfdata" / f"stub__{env}"
        tf = infra.TerraformEnv(settings, folder, cli_config=infra.install_stub(settings), data_dir=data_dir)
    else:
        tf = infra.TerraformEnv(settings, env)
    tf.init(backend=False)
    report = tf.validate()
    if as_json:
        echo_json(report)
    else:
        click.echo(f"{env}: valid ({report.get('warning_count', 0)} warnings)")


@infra_group.command("plan")
@env_option
@var_file_option
@var_option
@click.option("--destroy", is_flag=True, help="plan the destruction of the environment")
@click.pass_context
def plan_cmd(
    ctx: click.Context, env: str, var_files: tuple[Path, ...], variables: tuple[str, ...], destroy: bool
) -> None:
    """terraform plan. Exit status 0: no changes, 2: changes planned."""
    tf = infra.TerraformEnv(settings_of(ctx), env)
    changes = tf.plan(destroy=destroy, var_files=var_files, variables=_pairs(variables), stream=True)
    sys.exit(2 if changes else 0)


def _provision(
    ctx: click.Context,
    env: str,
    yes: bool,
    destroy: bool,
    var_files: tuple[Path, ...],
    variables: tuple[str, ...],
) -> None:
    result = infra.provision(
        settings_of(ctx), env, confirm=_confirm(yes), destroy=destroy,
        var_files=var_files, variables=_pairs(variables),
    )  # fmt: skip
    if not result["changes"]:
        info(f"{env}: nothing to change")
    elif not result["applied"]:
        info(f"{env}: not applied")
    elif "inventory" in result:
        inv = result["inventory"]
        info(f"{env}: applied; inventory with {inv['hosts']} hosts written to {inv['path']}")
    else:
        info(f"{env}: destroyed")


@infra_group.command("apply")
@env_option
@yes_option
@var_file_option
@var_option
@click.pass_context
def apply_cmd(
    ctx: click.Context, env: str, yes: bool, var_files: tuple[Path, ...], variables: tuple[str, ...]
) -> None:
    """Plan, ask, apply exactly that plan, then write playbooks/inventories/<env>/hosts.yml."""
    _provision(ctx, env, yes, False, var_files, variables)


@infra_group.command("destroy")
@env_option
@yes_option
@var_file_option
@var_option
@click.pass_context
def destroy_cmd(
    ctx: click.Context, env: str, yes: bool, var_files: tuple[Path, ...], variables: tuple[str, ...]
) -> None:
    """Plan the destruction, ask, destroy."""
    _provision(ctx, env, yes, True, var_files, variables)


@infra_group.command("output")
@env_option
@click.pass_context
def output_cmd(ctx: click.Context, env: str) -> None:
    """The environment's outputs as JSON."""
    echo_json(infra.TerraformEnv(settings_of(ctx), env).outputs())


@infra_group.command("inventory")
@env_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="default: playbooks/inventories/<env>/hosts.yml",
)
@json_option
@click.pass_context
def inventory_cmd(ctx: click.Context, env: str, out: Path | None, as_json: bool) -> None:
    """Write the Ansible inventory (hosts, addresses, role groups) from the env's Terraform outputs."""
    settings = settings_of(ctx)
    outputs = infra.TerraformEnv(settings, env).outputs()
    summary = infra.write_inventory(outputs, out or infra.inventory_path(settings.infra_dir, env), env)
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['path']}: {summary['hosts']} hosts")


@infra_group.group("lease")
def lease_group() -> None:
    """The daily GPU lease (Blazar): its reservation id reaches Terraform in gpu_lease.auto.tfvars.json."""


def _manager(cloud: str) -> infra.LeaseManager:
    return infra.LeaseManager(infra.blazar_client(cloud))


@lease_group.command("create")
@env_option
@cloud_option
@click.option(
    "--node-type",
    default="compute_liqid",
    show_default=True,
    help="Chameleon node type to reserve (NVIDIA: the images are CUDA)",
)
@click.option("--hours", type=float, default=4.0, show_default=True, help="length of the block")
@click.option("--count", type=int, default=1, show_default=True, help="hosts to reserve")
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]), help="UTC start (default: now)"
)
@click.option(
    "--wait", "wait_s", type=float, default=0, help="seconds to wait for the lease to become ACTIVE"
)
@json_option
@click.pass_context
def lease_create(
    ctx: click.Context, env: str, cloud: str, node_type: str, hours: float, count: int,
    start: datetime | None, wait_s: float, as_json: bool,
) -> None:  # fmt: skip
    """Reserve the GPU host and hand the reservation id to infra/envs/<env> (next apply adds the GPU node)."""
    settings = settings_of(ctx)
    infra.TerraformEnv(settings, env)  # the environment must exist before anything is reserved
    spec = infra.LeaseSpec(
        env=env,
        node_type=node_type,
        hours=hours,
        count=count,
        start=start.replace(tzinfo=UTC) if start else None,
    )
    manager = _manager(cloud)
    lease = manager.create(spec)
    if wait_s > 0:
        lease = manager.wait_active(lease.id, timeout_s=wait_s)
    path = infra.lease_tfvars_path(settings.infra_dir, env)
    infra.write_lease_tfvars(path, lease)
    if as_json:
        echo_json({**lease.as_dict(), "tfvars": str(path)})
    else:
        click.echo(
            f"lease {lease.name} ({lease.id}) {lease.status}; reservation {lease.reservation_id} -> {path}"
        )


@lease_group.command("status")
@env_option
@cloud_option
@json_option
@click.pass_context
def lease_status(ctx: click.Context, env: str, cloud: str, as_json: bool) -> None:
    """The environment's leases that have not ended, and the reservation Terraform will use."""
    settings = settings_of(ctx)
    leases = _manager(cloud).leases(env)
    path = infra.lease_tfvars_path(settings.infra_dir, env)
    handed = _handed_reservation(path)
    if as_json:
        echo_json({"leases": [x.as_dict() for x in leases], "terraform_reservation_id": handed})
        return
    for x in leases:
        click.echo(
            f"{x.name} {x.id} {x.status} {x.start_date} -> {x.end_date} reservation {x.reservation_id}"
        )
    click.echo(f"terraform uses reservation: {handed or 'none (no GPU node)'}")


def _handed_reservation(path: Path) -> str | None:
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("gpu_reservation_id")
    return str(value) if value else None


@lease_group.command("delete")
@env_option
@cloud_option
@yes_option
@click.option(
    "--lease", "lease_id", help="lease id (default: every lease of the environment that has not ended)"
)
@click.pass_context
def lease_delete(ctx: click.Context, env: str, cloud: str, yes: bool, lease_id: str | None) -> None:
    """End the lease(s) and take the reservation id back from Terraform (next apply removes the GPU node)."""
    settings = settings_of(ctx)
    manager = _manager(cloud)
    targets = [lease_id] if lease_id else [x.id for x in manager.leases(env)]
    if targets and not _confirm(yes)(f"delete lease(s) {', '.join(targets)}?"):
        info("not deleted")
        return
    for target in targets:
        manager.delete(target)
        info(f"deleted lease {target}")
    infra.lease_tfvars_path(settings.infra_dir, env).unlink(missing_ok=True)
    if not targets:
        info(f"{env}: no active lease")


@click.group("argo")
def argo_group() -> None:
    """The promotion pipeline on an Argo server (REPLAYREC_ARGO_SERVER, REPLAYREC_ARGO_TOKEN)."""


@argo_group.command("submit")
@click.argument("plugin")
@click.option("--dataset", help="the template's dataset parameter (default: the template's)")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="another template parameter")
@json_option
@click.pass_context
def argo_submit_cmd(
    ctx: click.Context, plugin: str, dataset: str | None, params: tuple[str, ...], as_json: bool
) -> None:
    """Submit the replayrec-promotion WorkflowTemplate (train → evaluate → stage → canary → prod) for
    PLUGIN."""
    run = infra.argo_submit(settings_of(ctx), plugin, dataset=dataset, parameters=_pairs(params))
    if as_json:
        echo_json(run.as_dict())
    else:
        click.echo(f"submitted {run.namespace}/{run.name} ({run.phase})")


@argo_group.command("status")
@click.argument("name", required=False)
@click.option("--plugin", help="the plugin's newest promotion run (instead of NAME)")
@json_option
@click.pass_context
def argo_status_cmd(ctx: click.Context, name: str | None, plugin: str | None, as_json: bool) -> None:
    """A promotion workflow's phase and the phase of each step."""
    run = infra.argo_status(settings_of(ctx), name=name, plugin=plugin)
    if as_json:
        echo_json(run.as_dict())
        return
    click.echo(f"{run.namespace}/{run.name}: {run.phase} ({run.started_at} -> {run.finished_at or '…'})")
    for step, phase in run.steps.items():
        click.echo(f"  {step:<12} {phase}")
    if run.message:
        click.echo(f"  message: {run.message}")
