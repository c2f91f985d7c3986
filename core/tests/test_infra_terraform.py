"""The Terraform tree under infra/, checked offline with real Terraform against the schema-only OpenStack
provider stub (built from the provider's recorded schema), plus the project's own Terraform driver.

What stays untested here: the real provider's Go-side validators and API calls, the S3 backend against
Chameleon's object store, and an apply on Chameleon (no cloud is reachable)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replayrec.config import Settings
from replayrec.infra import (
    InfraError,
    TerraformEnv,
    check_offline,
    configurations,
    footprint,
    install_stub,
    provision,
    scan,
    terraform_binary,
)

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    for tool in (REPO / ".venv-infra" / "bin" / "python", REPO / ".venv-checkov" / "bin" / "checkov"):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: run `make infra-tools` (make test does)")
    return Settings(
        infra_dir=INFRA,
        state_dir=tmp_path / "state",
        data_dir=REPO.parent / "shared" / "data",
        infra_tools_python=REPO / ".venv-infra" / "bin" / "python",
        checkov_binary=REPO / ".venv-checkov" / "bin" / "checkov",
    )


@pytest.fixture
def infra_copy(tmp_path: Path, settings: Settings) -> tuple[Path, Settings]:
    """A copy of infra/ to break on purpose (Terraform's working files stay out of it)."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    return copy, settings.model_copy(update={"infra_dir": copy})


def _stub_env(settings: Settings, folder: Path) -> TerraformEnv:
    data = settings.state_dir / "tfdata" / folder.name
    return TerraformEnv(settings, folder, cli_config=install_stub(settings), data_dir=data)


@pytest.mark.slow
def test_every_module_and_environment_passes_fmt_validate_test_and_scan(settings: Settings) -> None:
    steps = check_offline(settings)
    failed = [f"{s.step} {s.target}: {s.detail}" for s in steps if not s.ok]
    assert not failed, "\n".join(failed)
    targets = {str(p.relative_to(INFRA)) for p in configurations(INFRA)}
    assert {
        "modules/network",
        "modules/security",
        "modules/compute",
        "modules/storage",
        "modules/floating_ip",
    } <= targets
    assert {"envs/dev", "envs/prod"} <= targets
    validated = {s.target for s in steps if s.step == "validate"}
    tested = {s.target for s in steps if s.step == "test"}
    # the cluster module takes two provider configurations: validated inside the environments and its tests
    assert validated == targets - {"modules/cluster"}
    assert tested == targets, "every module and environment has terraform test files"
    runs = sum(s.numbers.get("passed", 0) for s in steps if s.step == "test")
    assert runs >= 60
    assert sum(s.numbers.get("failed", 0) for s in steps if s.step == "test") == 0
    (scan_step,) = [s for s in steps if s.step == "scan"]
    assert scan_step.numbers["passed"] > 0
    assert scan_step.numbers["failed"] == 0
    assert scan_step.numbers["parsing_errors"] == 0


# (file, text to find, replacement, the error Terraform reports, and the text on the line it names: None = the
# first changed line)
RULE = '  direction         = "ingress"\n  ethertype         = "IPv4"\n  protocol          = "tcp"\n'
INJECTED = [
    pytest.param(
        "modules/network/main.tf", "  admin_state_up = true\n", "  admin_state_upp = true\n",
        r"Unsupported argument", None, id="misspelled-argument",
    ),
    pytest.param(
        "modules/storage/main.tf", "  size              = var.size_gb\n", "",
        r"Missing required argument", 'resource "openstack_blockstorage_volume_v3" "this" {',
        id="missing-required-argument",  # reported on the block that lacks it
    ),
    pytest.param(
        "modules/compute/main.tf", "  key_pair          = var.key_pair\n",
        "  key_pair          = { name = var.key_pair }\n",
        r"Incorrect attribute value type", None, id="wrong-type",
    ),
    pytest.param(
        "modules/security/main.tf", RULE, RULE + "  port_range        = 22\n",
        r"Unsupported argument", None, id="unknown-argument-in-a-rule",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("relpath", "find", "replace", "error", "at"), INJECTED)
def test_an_injected_error_in_a_module_fails_validation_with_file_and_line(
    infra_copy: tuple[Path, Settings], relpath: str, find: str, replace: str, error: str, at: str | None
) -> None:
    copy, settings = infra_copy
    target = copy / relpath
    text = target.read_text()
    assert find in text, f"the test's anchor is gone from {relpath}"
    same = next((i for i, (a, b) in enumerate(zip(find, replace, strict=False)) if a != b), len(find))
    start = text.index(at) if at else text.index(find) + same
    line = text[:start].count("\n") + 1
    target.write_text(text.replace(find, replace, 1))
    env = _stub_env(settings, copy / "envs" / "prod")  # the error is caught through the environment using it
    env.init(backend=False)
    with pytest.raises(InfraError, match=error) as caught:
        env.validate()
    assert re.search(rf"{re.escape(relpath)}:{line}\b", str(caught.value)), str(caught.value)


def test_an_unbroken_copy_validates(infra_copy: tuple[Path, Settings]) -> None:
    copy, settings = infra_copy
    env = _stub_env(settings, copy / "envs" / "prod")
    env.init(backend=False)
    assert env.validate()["valid"] is True


def test_a_security_regression_fails_the_module_tests(infra_copy: tuple[Path, Settings]) -> None:
    copy, settings = infra_copy
    main = copy / "modules" / "security" / "main.tf"
    text = main.read_text()
    anchor = '{ for c in var.admin_cidrs : "node-ssh-${c}"'
    assert anchor in text
    main.write_text(
        text.replace(anchor, '{ for c in var.public_http_cidrs : "node-ssh-${c}"', 1)
    )  # SSH to all
    env = _stub_env(settings, copy / "modules" / "security")
    env.init(backend=False)
    result = env.run("test", check=False)
    assert result.returncode != 0
    assert 'run "ssh_and_kubernetes_api_only_from_the_admin_cidrs"... fail' in result.stdout


def test_the_scan_flags_ssh_open_to_the_internet(infra_copy: tuple[Path, Settings]) -> None:
    copy, settings = infra_copy
    (copy / "modules" / "security" / "debug.tf").write_text(
        'resource "openstack_networking_secgroup_rule_v2" "debug_ssh" {\n'
        '  direction         = "ingress"\n  ethertype         = "IPv4"\n  protocol          = "tcp"\n'
        '  port_range_min    = 22\n  port_range_max    = 22\n  remote_ip_prefix  = "0.0.0.0/0"\n'
        '  security_group_id = openstack_networking_secgroup_v2.this["node"].id\n}\n'
    )
    result = scan(settings, copy)
    assert [f["check"] for f in result["failed"]] == ["CKV_OPENSTACK_2"]
    assert result["failed"][0]["resource"].endswith("openstack_networking_secgroup_rule_v2.debug_ssh")


def test_planning_against_the_stub_outside_a_test_is_refused(infra_copy: tuple[Path, Settings]) -> None:
    copy, settings = infra_copy
    env = _stub_env(settings, copy / "modules" / "state_bucket")
    env.init(backend=False)
    with pytest.raises(InfraError, match="schema-only OpenStack stub"):
        env.plan(variables={"name": "replayrec-tfstate"})


def test_without_terraform_on_path_the_embedded_one_runs(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = terraform_binary(settings)
    assert binary.parent == settings.state_dir / "infra" / "bin"
    proc = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"Terraform v1\.15\.\d", proc.stdout)


PROVIDERLESS_ENV = """
variable "admin_cidrs" {
  type = list(string)
}

resource "terraform_data" "node" {
  count = 2
  input = "10.20.0.${count.index + 10}"
}

output "ansible_inventory" {
  value = {
    all = {
      hosts = {
        for i, n in terraform_data.node : "demo-k8s-${i}" => { ansible_host = n.output, node_role = "serving"}
      }
      vars  = { ansible_user = "cc", admin_cidrs = var.admin_cidrs }
      children = {
        k8s_control_plane = { hosts = { "demo-k8s-0" = {} } }
        gpu               = { hosts = {} }
      }
    }
  }
}
"""


def test_apply_asks_applies_the_shown_plan_writes_the_inventory_and_destroys(
    tmp_path: Path, settings: Settings
) -> None:
    """The driver end to end on a configuration needing no provider (Terraform's built-in terraform_data)."""
    infra_dir = tmp_path / "tree" / "infra"
    (infra_dir / "envs" / "demo").mkdir(parents=True)
    (infra_dir / "envs" / "demo" / "main.tf").write_text(PROVIDERLESS_ENV)
    local = settings.model_copy(update={"infra_dir": infra_dir})
    TerraformEnv(local, "demo").init(backend=False)
    variables = {"admin_cidrs": '["203.0.113.0/24"]'}
    questions: list[str] = []

    def refuse(q: str) -> bool:
        questions.append(q)
        return False

    declined = provision(local, "demo", confirm=refuse, variables=variables, stream=False)
    assert declined == {"env": "demo", "destroy": False, "changes": True, "applied": False}
    assert questions == ["apply this plan to environment demo?"]
    assert not (infra_dir / "envs" / "demo" / "terraform.tfstate").exists()

    applied = provision(local, "demo", confirm=lambda q: True, variables=variables, stream=False)
    assert applied["applied"] is True
    inventory = tmp_path / "tree" / "playbooks" / "inventories" / "demo" / "hosts.yml"
    assert applied["inventory"] == {
        "path": str(inventory),
        "hosts": 2,
        "groups": {"gpu": 0, "k8s_control_plane": 1},
    }
    doc = yaml.safe_load(inventory.read_text())
    assert doc["all"]["hosts"]["demo-k8s-1"] == {"ansible_host": "10.20.0.11", "node_role": "serving"}
    assert doc["all"]["vars"]["admin_cidrs"] == ["203.0.113.0/24"]
    assert not list((local.state_dir / "infra" / "plans").glob("*.tfplan")), "saved plans are removed"

    again = provision(local, "demo", confirm=lambda q: True, variables=variables, stream=False)
    assert again["changes"] is False, "a second apply has nothing to do"

    gone = provision(local, "demo", confirm=lambda q: True, destroy=True, variables=variables, stream=False)
    assert gone["applied"] is True
    assert TerraformEnv(local, "demo").outputs() == {}


def test_cli_apply_without_a_terminal_needs_yes_and_changes_nothing(
    tmp_path: Path, settings: Settings
) -> None:
    infra_dir = tmp_path / "tree" / "infra"
    (infra_dir / "envs" / "demo").mkdir(parents=True)
    (infra_dir / "envs" / "demo" / "main.tf").write_text(PROVIDERLESS_ENV)
    local = settings.model_copy(update={"infra_dir": infra_dir})
    TerraformEnv(local, "demo").init(backend=False)
    env = {**os.environ, "REPLAYREC_INFRA_DIR": str(infra_dir), "REPLAYREC_STATE_DIR": str(local.state_dir)}

    def replayrec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", "infra", *args], capture_output=True, text=True, env=env,
            stdin=subprocess.DEVNULL, timeout=300, check=False,
        )  # fmt: skip

    refused = replayrec("apply", "--env", "demo", "--var", 'admin_cidrs=["203.0.113.0/24"]')
    assert refused.returncode != 0
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("error: apply this plan to environment demo? needs")
    )
    assert not (infra_dir / "envs" / "demo" / "terraform.tfstate").exists()
    unknown = replayrec("plan", "--env", "staging")
    assert unknown.returncode != 0
    assert "error: unknown environment 'staging'; available: demo" in unknown.stderr
    bad_var = replayrec("plan", "--env", "demo", "--var", "admin_cidrs")
    assert "error: --var 'admin_cidrs': expected KEY=VALUE" in bad_var.stderr


SEED_FOOTPRINT = {
    "openstack_compute_instance_v2": 3,  # 3 x m1.medium Kubernetes nodes
    "openstack_networking_port_v2": 3,
    "openstack_blockstorage_volume_v3": 1,  # 100 GB
    "openstack_compute_volume_attach_v2": 1,
    "openstack_networking_floatingip_v2": 2,  # public API, admin
    "openstack_networking_floatingip_associate_v2": 2,
    "openstack_networking_network_v2": 1,
    "openstack_networking_subnet_v2": 1,
    "openstack_networking_router_v2": 1,
    "openstack_networking_router_interface_v2": 1,
    "openstack_networking_secgroup_v2": 3,
    "openstack_networking_secgroup_rule_v2": 8,
    "openstack_compute_keypair_v2": 1,
}


def test_prod_plans_the_seeds_allocation_and_a_lease_adds_one_gpu_node(settings: Settings) -> None:
    plain = footprint(settings, "prod")
    assert plain["resources"] == SEED_FOOTPRINT
    assert plain["var_files"][0].endswith("envs/prod/example.tfvars")
    leased = footprint(
        settings, "prod", variables={"gpu_reservation_id": "2b4f3ad8-5f12-4c6c-9d0e-3c0b9d5f7a11"}
    )
    added = {
        k: v - SEED_FOOTPRINT.get(k, 0) for k, v in leased["resources"].items() if v != SEED_FOOTPRINT.get(k)
    }
    assert added == {
        "openstack_compute_instance_v2": 1,
        "openstack_networking_port_v2": 1,
        "openstack_compute_keypair_v2": 1,  # the key pair on the GPU site
        "openstack_networking_floatingip_v2": 1,  # the GPU site's own address
        "openstack_networking_floatingip_associate_v2": 1,
    }
    assert "module.replayrec.module.gpu.openstack_compute_instance_v2.this[0]" in leased["addresses"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_backend_configuration_is_one_the_s3_backend_accepts(
    infra_copy: tuple[Path, Settings], env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backend.hcl parsed by Terraform's own s3 backend, which then reaches for the object store: here a
    closed local port (Chameleon's endpoint is unreachable), so the error must be the connection, not the
    configuration."""
    copy, settings = infra_copy
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "EC2-ACCESS-FOR-TESTS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ec2-secret-for-tests")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    env_dir = copy / "envs" / env
    tf = TerraformEnv(settings, env_dir, cli_config=install_stub(settings), data_dir=settings.state_dir / env)
    result = tf.run(
        "init",
        check=False,
        input=False,
        backend_config=["backend.hcl", 'endpoints={s3="http://127.0.0.1:9"}'],
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'Unable to list objects in S3 bucket "replayrec-tfstate"' in output, output
    assert "http://127.0.0.1:9/replayrec-tfstate?" in output, "path-style addressing, as Ceph's S3 API needs"
    assert "Unsupported argument" not in output
    assert "Invalid" not in output
    assert f'key    = "{env}/terraform.tfstate"' in (env_dir / "backend.hcl").read_text()


def test_cli_validate_stub_and_footprint_as_a_user_runs_them(settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REPLAYREC_STATE_DIR": str(settings.state_dir),
        "REPLAYREC_INFRA_DIR": str(INFRA),
        "REPLAYREC_DATA_DIR": str(settings.data_dir),
    }

    def replayrec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", "infra", *args], capture_output=True, text=True, env=env,
            stdin=subprocess.DEVNULL, timeout=300, check=False, cwd=REPO,
        )  # fmt: skip

    valid = replayrec("validate", "--env", "dev", "--stub", "--json")
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["valid"] is True
    assert not (INFRA / "envs" / "dev" / ".terraform.lock.hcl").exists() or _untouched_by(settings)
    table = replayrec("footprint", "--env", "dev")
    assert table.returncode == 0, table.stderr
    assert "   3  openstack_compute_instance_v2" in table.stdout
    assert "  28  resources in dev" in table.stdout


def _untouched_by(settings: Settings) -> bool:
    """A lock file in the real tree predates this run (an operator's own init), not written by the stub."""
    lock = INFRA / "envs" / "dev" / ".terraform.lock.hcl"
    return lock.stat().st_mtime < settings.state_dir.stat().st_mtime
