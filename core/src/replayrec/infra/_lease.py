"""The daily GPU lease on Chameleon, through Blazar (``python-blazarclient``): the OpenStack provider has no
Blazar resource, so the lease is made here and its reservation id handed to Terraform.

``create`` reserves one bare-metal host of a node type (``compute_liqid`` by default: NVIDIA A100 at
CHI@TACC, what the deployment's CUDA image, NVIDIA driver role and ``nvidia.com/gpu`` requests expect) for a
block of hours and writes ``infra/envs/<env>/gpu_lease.auto.tfvars.json`` (``gpu_reservation_id``), which
Terraform loads on its own: the next ``replayrec infra apply --env <env>`` adds the GPU node inside the
reservation. ``delete`` ends the lease and removes the file, so the next apply removes the node. Credentials
come from clouds.yaml or the ``OS_*`` environment (an application credential), read by openstacksdk's
config loader.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from replayrec.errors import ConfigError
from replayrec.infra._terraform import InfraError

__all__ = [
    "GpuLease",
    "LeaseManager",
    "LeaseSpec",
    "blazar_client",
    "lease_request",
    "lease_tfvars_path",
    "write_lease_tfvars",
]

API_DATE_FORMAT = "%Y-%m-%d %H:%M"  # Blazar's request format (CCYY-MM-DD hh:mm, UTC)
_DONE = {"TERMINATED", "DELETED"}


@dataclass(frozen=True)
class LeaseSpec:
    """What to reserve: ``count`` hosts of ``node_type`` for ``hours`` from ``start`` (None: now)."""

    env: str
    node_type: str = "compute_liqid"
    hours: float = 4.0
    count: int = 1
    start: datetime | None = None

    def __post_init__(self) -> None:
        if not 0 < self.hours <= 24 * 7:
            raise ConfigError(f"lease hours must be in (0, 168], got {self.hours}")
        if not 1 <= self.count <= 8:
            raise ConfigError(f"lease host count must be between 1 and 8, got {self.count}")
        if not self.node_type.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(
                f"node type {self.node_type!r} is not a Chameleon node type such as compute_liqid"
            )
        if self.start is not None and self.start.tzinfo is None:
            raise ConfigError("lease start must carry a time zone (e.g. 2026-12-03T02:00+00:00)")

    def name(self, now: datetime) -> str:
        return f"replayrec-{self.env}-gpu-{(self.start or now).astimezone(UTC):%Y%m%d-%H%M}"


@dataclass(frozen=True)
class GpuLease:
    """A lease as Blazar reports it, with the host reservation's id (Terraform's scheduler hint)."""

    id: str
    name: str
    status: str
    start_date: str
    end_date: str
    reservation_id: str | None
    reservation_status: str | None

    @classmethod
    def from_api(cls, lease: Mapping[str, Any]) -> GpuLease:
        hosts = [r for r in lease.get("reservations") or [] if r.get("resource_type") == "physical:host"]
        first = hosts[0] if hosts else {}
        return cls(
            id=str(lease["id"]),
            name=str(lease.get("name", "")),
            status=str(lease.get("status", "UNKNOWN")),
            start_date=str(lease.get("start_date", "")),
            end_date=str(lease.get("end_date", "")),
            reservation_id=first.get("id"),
            reservation_status=first.get("status"),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lease_request(spec: LeaseSpec, now: datetime) -> dict[str, Any]:
    """The arguments of ``LeaseClientManager.create`` (the body of ``POST /v1/leases``) for ``spec``."""
    start = spec.start or now
    end = start + timedelta(hours=spec.hours)
    return {
        "name": spec.name(now),
        "start": "now" if spec.start is None else start.astimezone(UTC).strftime(API_DATE_FORMAT),
        "end": end.astimezone(UTC).strftime(API_DATE_FORMAT),
        "reservations": [
            {
                "resource_type": "physical:host",
                "min": spec.count,
                "max": spec.count,
                "hypervisor_properties": "",
                "resource_properties": json.dumps(["==", "$node_type", spec.node_type]),
            }
        ],
        "events": [],
    }


def blazar_client(cloud: str | None, region: str | None = None) -> Any:
    """A Blazar v1 client on a keystoneauth session built from clouds.yaml entry ``cloud`` (or ``OS_*``)."""
    import openstack.config
    from blazarclient import client as blazar

    try:
        config = openstack.config.OpenStackConfig().get_one(cloud=cloud, region_name=region)
        session = config.get_session()
    except Exception as exc:  # openstack.config raises its own exception types for missing/bad entries
        raise ConfigError(f"OpenStack credentials for cloud {cloud!r}: {exc}") from exc
    return blazar.Client(
        version="1",
        session=session,
        service_type="reservation",
        interface=config.get_interface() or "public",
        region_name=config.get_region_name(),
    )


def lease_tfvars_path(infra_dir: Path, env: str) -> Path:
    """The auto-loaded variables file carrying the active lease's reservation id into ``envs/<env>``."""
    return infra_dir / "envs" / env / "gpu_lease.auto.tfvars.json"


class LeaseManager:
    """Create, inspect and end the environment's GPU leases through a Blazar client."""

    def __init__(self, client: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._clock = clock or (lambda: datetime.now(UTC))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from blazarclient import exception

        try:
            return fn()
        except exception.BlazarClientException as exc:
            code = getattr(exc, "kwargs", {}).get("code", getattr(exc, "code", "?"))
            raise InfraError(f"Blazar {what}: {exc} (HTTP {code})") from exc

    def create(self, spec: LeaseSpec) -> GpuLease:
        body = lease_request(spec, self._clock())
        lease = self._call("lease create", lambda: self._client.lease.create(**body))
        result = GpuLease.from_api(lease)
        if result.reservation_id is None:
            raise InfraError(f"Blazar created lease {result.id} without a host reservation: {lease}")
        return result

    def leases(self, env: str) -> list[GpuLease]:
        """This environment's leases that have not ended, newest start first."""
        prefix = f"replayrec-{env}-gpu-"
        raw = self._call("lease list", self._client.lease.list)
        mine = [GpuLease.from_api(x) for x in raw if str(x.get("name", "")).startswith(prefix)]
        return sorted((x for x in mine if x.status not in _DONE), key=lambda x: x.start_date, reverse=True)

    def get(self, lease_id: str) -> GpuLease:
        return GpuLease.from_api(self._call("lease show", lambda: self._client.lease.get(lease_id)))

    def delete(self, lease_id: str) -> None:
        self._call("lease delete", lambda: self._client.lease.delete(lease_id))

    def wait_active(self, lease_id: str, *, timeout_s: float, poll_s: float = 10.0) -> GpuLease:
        """Poll until the lease is ACTIVE (its host is ready for the instance); raise on ERROR or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            lease = self.get(lease_id)
            if lease.status == "ACTIVE":
                return lease
            if lease.status in {"ERROR", *_DONE}:
                raise InfraError(f"lease {lease_id} is {lease.status}, not ACTIVE")
            if time.monotonic() >= deadline:
                raise InfraError(f"lease {lease_id} still {lease.status} after {timeout_s:.0f} s")
            time.sleep(poll_s)


def write_lease_tfvars(path: Path, lease: GpuLease) -> None:
    """Hand the reservation id to Terraform (atomically; the file is git-ignored)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"gpu_reservation_id": lease.reservation_id}, indent=2) + "\n")
    tmp.replace(path)
