"""Provisioning and deployment: Terraform for Chameleon Cloud driven from the project, its offline checks, the
Ansible inventory it produces, the daily GPU lease (Blazar) whose reservation id Terraform schedules into, the
Kubernetes manifests (``deploy/``) rendered and validated offline, and Argo submission."""

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
from replayrec.infra._k8s import (
    KUBERNETES_VERSION,
    check_manifests,
    crd_schema_dir,
    deploy_dir,
    deploy_environments,
    documented_secrets,
    environment_documents,
    render_kustomization,
    validate_builtin,
    validate_custom,
)
from replayrec.infra._k8s_rules import Peer, Workload, house_rules, reachable_from, workload_table, workloads
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
    "KUBERNETES_VERSION",
    "PROMOTION_TEMPLATE",
    "ArgoRun",
    "CheckStep",
    "GpuLease",
    "InfraError",
    "LeaseManager",
    "LeaseSpec",
    "Peer",
    "TerraformEnv",
    "TerraformResult",
    "Workload",
    "argo_status",
    "argo_submit",
    "blazar_client",
    "check_manifests",
    "check_offline",
    "check_tree",
    "configurations",
    "crd_schema_dir",
    "deploy_dir",
    "deploy_environments",
    "describe_diagnostics",
    "documented_secrets",
    "environment_documents",
    "environments",
    "footprint",
    "house_rules",
    "install_stub",
    "inventory_document",
    "inventory_path",
    "lease_request",
    "lease_tfvars_path",
    "provision",
    "reachable_from",
    "render_kustomization",
    "scan",
    "steps_as_dicts",
    "stub_schema_path",
    "terraform_binary",
    "validate_builtin",
    "validate_custom",
    "workload_table",
    "workloads",
    "write_inventory",
    "write_lease_tfvars",
]
