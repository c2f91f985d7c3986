"""The GPU lease through the real python-blazarclient on a real keystoneauth session (clouds.yaml, an
application credential), against a local endpoint answering with the recorded Keystone / Blazar shapes
(tests/data/blazar) and checking every request it receives. No Blazar endpoint is reachable from CI: what
Chameleon's Blazar does beyond these shapes (host allocation, lease start, the reservation's host appearing
to Nova) stays untested."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from replayrec.errors import ConfigError
from replayrec.infra import InfraError, LeaseManager, LeaseSpec, blazar_client, lease_request
from replayrec.testing import JsonEndpoint, json_endpoint

DATA = Path(__file__).parent / "data" / "blazar"
REPO = Path(__file__).resolve().parents[2]
TOKEN = "gAAAAABtoken-for-tests"
SHAPE = json.loads((DATA / "lease-create-request.json").read_text())


class FakeChameleon:
    """Keystone's token endpoint and Blazar's /v1/leases, in memory, checking what clients send."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.shape_errors: list[str] = []
        self.refuse_next_create: str | None = None
        self.gets_until_active = 1
        self.base = ""
        self.endpoint: JsonEndpoint | None = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        seen = self.endpoint.requests if self.endpoint else []
        return [{"method": r["method"], "path": r["path"], "token": r["headers"].get("x-auth-token"),
                 "body": r["body"]} for r in seen]  # fmt: skip

    def serve(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return self.answer(method, path, body, headers.get("x-auth-token"))

    def answer(self, method: str, path: str, body: Any, token: str | None) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/v3/auth/tokens":
            return self._token(body)
        if path.startswith("/v1/") and token != TOKEN:
            return (
                401,
                {"error_code": 401, "error_message": "The request you have made requires authentication."},
                {},
            )
        if method == "POST" and path == "/v1/leases":
            return self._create(body)
        if method == "GET" and path == "/v1/leases":
            return 200, {"leases": list(self.leases.values())}, {}
        match = re.fullmatch(r"/v1/leases/([0-9a-f-]+)", path)
        if match and match.group(1) in self.leases:
            lease = self.leases[match.group(1)]
            if method == "GET":
                self.gets_until_active -= 1
                lease["status"] = "ACTIVE" if self.gets_until_active <= 0 else "STARTING"
                return 200, {"lease": lease}, {}
            if method == "DELETE":
                del self.leases[match.group(1)]
                return 204, None, {}
        if match:
            return (
                404,
                {
                    "error_code": 404,
                    "error_message": f"Object with {{'lease_id': '{match.group(1)}'}} not found",
                },
                {},
            )
        return 404, {"error_code": 404, "error_message": f"no route {method} {path}"}, {}

    def _token(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        cred = (((body or {}).get("auth") or {}).get("identity") or {}).get("application_credential") or {}
        if cred.get("id") != "APP_CRED_ID" or cred.get("secret") != "s3cret":
            return (
                401,
                {"error": {"code": 401, "message": "The request you have made requires authentication."}},
                {},
            )
        text = (DATA / "keystone-token.json").read_text().replace("BASE_URL", self.base)
        return 201, json.loads(text), {"X-Subject-Token": TOKEN}

    def _create(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_shape(body)
        if self.refuse_next_create:
            message, self.refuse_next_create = self.refuse_next_create, None
            return (
                409,
                {"error_code": 409, "error_message": message, "error_name": "NotEnoughHostsAvailable"},
                {},
            )
        lease = json.loads((DATA / "lease.json").read_text())
        lease["id"] = str(uuid.uuid4())
        lease["name"] = body["name"]
        lease["start_date"] = body["start_date"]
        lease["end_date"] = body["end_date"]
        lease["reservations"][0]["id"] = str(uuid.uuid4())
        lease["reservations"][0]["lease_id"] = lease["id"]
        lease["reservations"][0]["resource_properties"] = body["reservations"][0]["resource_properties"]
        self.leases[lease["id"]] = lease
        return 201, {"lease": lease}, {}

    def _check_shape(self, body: Any) -> None:
        known = set(SHAPE["required"]) | set(SHAPE["optional"])
        missing = [k for k in SHAPE["required"] if k not in body]
        extra = [k for k in body if k not in known]
        self.shape_errors += [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]
        for key in ("start_date", "end_date"):
            if not re.match(SHAPE["date_pattern"], str(body.get(key))):
                self.shape_errors.append(f"{key} {body.get(key)!r} is not CCYY-MM-DD hh:mm")
        for r in body.get("reservations") or []:
            self.shape_errors += [
                f"reservation lacks {k}" for k in SHAPE["reservation_required"] if k not in r
            ]


@pytest.fixture
def chameleon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChameleon]:
    fake = FakeChameleon()
    with json_endpoint(fake.serve) as endpoint:
        fake.endpoint, fake.base = endpoint, endpoint.url
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(
            "clouds:\n  chi_tacc_test:\n    auth_type: v3applicationcredential\n    auth:\n"
            f"      auth_url: {fake.base}/v3\n      application_credential_id: APP_CRED_ID\n"
            "      application_credential_secret: s3cret\n    region_name: CHI@TACC\n    interface: public\n"
            "    identity_api_version: 3\n"
        )
        for key in [k for k in os.environ if k.startswith("OS_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        yield fake


NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def test_the_request_reserves_one_gpu_host_for_four_hours() -> None:
    body = lease_request(LeaseSpec(env="prod"), NOW)
    assert body == {
        "name": "replayrec-prod-gpu-20261202-1500",
        "start": "now",
        "end": "2026-12-02 19:00",
        "reservations": [
            {
                "resource_type": "physical:host",
                "min": 1,
                "max": 1,
                "hypervisor_properties": "",
                "resource_properties": '["==", "$node_type", "compute_liqid"]',
            }
        ],
        "events": [],
    }
    later = lease_request(LeaseSpec(env="dev", hours=2, start=datetime(2026, 12, 3, 2, 0, tzinfo=UTC)), NOW)
    assert (later["start"], later["end"], later["name"]) == (
        "2026-12-03 02:00",
        "2026-12-03 04:00",
        "replayrec-dev-gpu-20261203-0200",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": 0}, "lease hours"),
        ({"count": 0}, "host count"),
        ({"node_type": "gpu mi100; rm"}, "node type"),
        ({"start": datetime(2026, 12, 3, 2, 0)}, "time zone"),
    ],
)
def test_bad_lease_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LeaseSpec(env="prod", **kwargs)


@pytest.mark.integration
def test_create_wait_list_delete_through_blazarclient(chameleon: FakeChameleon) -> None:
    manager = LeaseManager(blazar_client("chi_tacc_test"), clock=lambda: NOW)
    lease = manager.create(LeaseSpec(env="prod"))
    assert chameleon.shape_errors == []
    assert lease.name == "replayrec-prod-gpu-20261202-1500"
    assert lease.status == "PENDING"
    stored = chameleon.leases[lease.id]
    assert lease.reservation_id == stored["reservations"][0]["id"]
    (create,) = [r for r in chameleon.requests if r["method"] == "POST" and r["path"] == "/v1/leases"]
    assert create["token"] == TOKEN, "the Keystone token from the application credential is sent"
    assert create["body"]["reservations"][0]["resource_properties"] == '["==", "$node_type", "compute_liqid"]'

    chameleon.gets_until_active = 2
    active = manager.wait_active(lease.id, timeout_s=30, poll_s=0.01)
    assert active.status == "ACTIVE"
    assert [x.id for x in manager.leases("prod")] == [lease.id]
    assert manager.leases("dev") == []

    manager.delete(lease.id)
    assert chameleon.leases == {}
    with pytest.raises(InfraError, match=r"Blazar lease show: .*not found.*HTTP 404"):
        manager.get(lease.id)


@pytest.mark.integration
def test_blazar_errors_and_bad_credentials_are_clear(chameleon: FakeChameleon, tmp_path: Path) -> None:
    manager = LeaseManager(blazar_client("chi_tacc_test"), clock=lambda: NOW)
    chameleon.refuse_next_create = "Not enough hosts available"
    with pytest.raises(InfraError, match=r"Blazar lease create: .*Not enough hosts available.*HTTP 409"):
        manager.create(LeaseSpec(env="prod"))
    assert chameleon.leases == {}
    with pytest.raises(ConfigError, match="OpenStack credentials for cloud 'no_such_cloud'"):
        blazar_client("no_such_cloud")


@pytest.mark.integration
def test_cli_lease_create_hands_the_reservation_to_terraform_and_delete_takes_it_back(
    chameleon: FakeChameleon, tmp_path: Path
) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(REPO / "infra", infra, ignore=shutil.ignore_patterns(".terraform*", "*.tfvars.json"))
    env = {**os.environ, "REPLAYREC_INFRA_DIR": str(infra), "REPLAYREC_STATE_DIR": str(tmp_path / "state")}

    def replayrec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", "infra", "lease", *args, "--env", "prod", "--cloud", "chi_tacc_test"],  # noqa: E501
            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120, check=False,
        )  # fmt: skip

    created = replayrec("create", "--hours", "4", "--wait", "30", "--json")
    assert created.returncode == 0, created.stderr
    lease = json.loads(created.stdout)
    assert lease["status"] == "ACTIVE"
    tfvars = infra / "envs" / "prod" / "gpu_lease.auto.tfvars.json"
    assert json.loads(tfvars.read_text()) == {"gpu_reservation_id": lease["reservation_id"]}

    status = replayrec("status", "--json")
    assert json.loads(status.stdout)["terraform_reservation_id"] == lease["reservation_id"]

    refused = replayrec("delete")
    assert refused.returncode != 0
    assert "needs confirmation" in refused.stderr
    assert tfvars.exists()
    deleted = replayrec("delete", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not tfvars.exists()
    assert chameleon.leases == {}
