"""``apply`` and ``destroy`` for an environment: plan to a file, show it, ask, apply exactly that plan, and
refresh the Ansible inventory from the new outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.infra._inventory import inventory_path, write_inventory
from replayrec.infra._terraform import TerraformEnv

__all__ = ["provision"]


def provision(
    settings: Settings,
    env: str,
    *,
    confirm: Callable[[str], bool],
    destroy: bool = False,
    var_files: Sequence[Path] = (),
    variables: Mapping[str, str] | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    """Plan (``-destroy`` with ``destroy``), then apply the saved plan if ``confirm(question)`` says yes.

    Returns what happened: ``changes`` (the plan had any), ``applied``, and after an apply that leaves
    infrastructure behind, the ``inventory`` summary written to ``playbooks/inventories/<env>/hosts.yml``.
    """
    tf = TerraformEnv(settings, env)
    plans = settings.state_dir / "infra" / "plans"
    plans.mkdir(parents=True, exist_ok=True)
    plan_file = plans / f"{env}{'-destroy' if destroy else ''}.tfplan"
    changes = tf.plan(out=plan_file, destroy=destroy, var_files=var_files, variables=variables, stream=stream)
    result: dict[str, Any] = {"env": env, "destroy": destroy, "changes": changes, "applied": False}
    if not changes:
        plan_file.unlink(missing_ok=True)
        return result
    verb = "destroy everything in" if destroy else "apply this plan to"
    if not confirm(f"{verb} environment {env}?"):
        plan_file.unlink(missing_ok=True)
        return result
    try:
        tf.apply_plan(plan_file, stream=stream)
    finally:
        plan_file.unlink(missing_ok=True)  # a saved plan holds variable values: never leave it lying around
    result["applied"] = True
    if not destroy:
        outputs = tf.outputs()
        result["inventory"] = write_inventory(outputs, inventory_path(settings.infra_dir, env), env)
    return result
