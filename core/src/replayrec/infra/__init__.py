"""Provisioning: Terraform for Chameleon Cloud driven from the project, its offline checks, the Ansible
inventory it produces, and the daily GPU lease (Blazar) whose reservation id Terraform schedules into."""

from replayrec.infra._argo import PROMOTION_TEMPLATE, ArgoRun, argo_status, argo_submit
from replayrec.infra._check import (
    CheckStep,
    check_offline,
    check_tree,
    configurations,
    install_stub,
    scan,
    steps_as_dicts,
    stub_schema_path,
)
from replayrec.infra._footprint import footprint
from replayrec.infra._inventory import inventory_document, inventory_path, write_inventory
from replayrec.infra._lease import (
    GpuLease,
    LeaseManager,
    LeaseSpec,
    blazar_client,
    lease_request,
    lease_tfvars_path,
    write_lease_tfvars,
)
from replayrec.infra._provision import provision
from replayrec.infra._terraform import (
    InfraError,
    TerraformEnv,
    TerraformResult,
    describe_diagnostics,
    environments,
    terraform_binary,
)

__all__ = [
    "PROMOTION_TEMPLATE",
    "ArgoRun",
    "CheckStep",
    "GpuLease",
    "InfraError",
    "LeaseManager",
    "LeaseSpec",
    "TerraformEnv",
    "TerraformResult",
    "argo_status",
    "argo_submit",
    "blazar_client",
    "check_offline",
    "check_tree",
    "configurations",
    "describe_diagnostics",
    "environments",
    "footprint",
    "install_stub",
    "inventory_document",
    "inventory_path",
    "lease_request",
    "lease_tfvars_path",
    "provision",
    "scan",
    "steps_as_dicts",
    "stub_schema_path",
    "terraform_binary",
    "write_inventory",
    "write_lease_tfvars",
]
