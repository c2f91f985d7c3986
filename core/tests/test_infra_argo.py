"""`replayrec argo submit | status` through the real argo-workflows client against a local endpoint speaking
the Argo Server API's shapes: every submit body is validated against the official schema's
WorkflowSubmitRequest (../shared/schemas/argo-workflows, strict: unknown keys rejected) and its parameters
against the rendered template. No Argo server runs here: what a server does with a submission is untested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.infra import PROMOTION_TEMPLATE, InfraError, argo_status, argo_submit
from replayrec.testing import JsonEndpoint, json_endpoint

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "schemas" / "argo-workflows" / "schema.json"
TEMPLATE = yaml.safe_load((REPO / "argo" / "rendered" / "promotion-template.yaml").read_text())
#: the rendered retraining CronWorkflows by name (a submission from one runs the template with its arguments)
CRONS = {
    doc["metadata"]["name"]: doc
    for path in sorted((REPO / "argo" / "rendered").glob("cron-retrain-*.yaml"))
    for doc in [yaml.safe_load(path.read_text())]
}
TOKEN = "argo-token-for-tests"


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def submit_validator() -> jsonschema.protocols.Validator:
    if not SCHEMA.is_file():
        pytest.skip(f"no Argo schema at {SCHEMA}")
    doc = _strict(json.loads(SCHEMA.read_text()))
    schema = {
        "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.WorkflowSubmitRequest",
        "definitions": doc["definitions"],
    }
    return jsonschema.Draft7Validator(schema)


class FakeArgo:
    """The Argo Server's submit / get / list workflow endpoints, in memory, checking what clients send."""

    def __init__(self) -> None:
        self.validator = submit_validator()
        self.errors: list[str] = []
        self.workflows: dict[str, dict[str, Any]] = {}
        self.endpoint: JsonEndpoint | None = None
        self.url = ""

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [
            {"path": r["path"], "body": r["body"]} for r in (self.endpoint.requests if self.endpoint else [])
        ]

    def serve(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {"code": 16, "message": "token not valid"}, {}
        status, answer = self.submit(path, body) if method == "POST" else self.get(path)
        return status, answer, {}

    def submit(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.errors += [
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in self.validator.iter_errors(body)
        ]
        ns = path.split("/")[4]
        kind, name = body.get("resourceKind"), body.get("resourceName")
        known_resource = (kind == "WorkflowTemplate" and name == PROMOTION_TEMPLATE) or (
            kind == "CronWorkflow" and name in CRONS
        )
        if path != f"/api/v1/workflows/{ns}/submit" or not known_resource:
            return 404, {
                "code": 5,
                "message": f"workflowtemplates.argoproj.io {body.get('resourceName')!r} not found",
            }
        known = {p["name"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
        opts = body["submitOptions"]
        unknown = [p.split("=")[0] for p in opts.get("parameters", []) if p.split("=")[0] not in known]
        if unknown:
            return 400, {"code": 3, "message": f"parameters not in the template: {unknown}"}
        name = f"{opts['generateName']}x7k2p"
        key, value = opts["labels"].split("=")
        wf = {
            "metadata": {"name": name, "namespace": ns, "labels": {key: value},
                         "creationTimestamp": f"2026-12-02T17:{len(self.workflows):02d}:00Z"},
            "spec": {"workflowTemplateRef": {"name": PROMOTION_TEMPLATE}, "arguments": {"parameters": [
                {"name": p.split("=")[0], "value": p.split("=", 1)[1]} for p in opts["parameters"]]}},
            "status": {"phase": "Pending", "startedAt": None, "finishedAt": None},
        }  # fmt: skip
        self.workflows[name] = wf
        return 200, wf

    def get(self, path: str) -> tuple[int, Any]:
        parts = path.split("?", maxsplit=1)[0].split("/")
        ns = parts[4]
        if len(parts) == 6 and parts[5] in self.workflows:
            wf = self.workflows[parts[5]]
            wf["status"] = {
                "phase": "Running", "startedAt": "2026-12-02T17:00:05Z", "finishedAt": None,
                "nodes": {
                    f"{parts[5]}": {"name": parts[5], "type": "DAG", "phase": "Running"},
                    f"{parts[5]}-1": {"name": "x.train", "displayName": "train", "type": "Pod",
                                      "phase": "Succeeded"},
                    f"{parts[5]}-2": {"name": "x.evaluate", "displayName": "evaluate", "type": "Pod",
                                      "phase": "Running"},
                },
            }  # fmt: skip
            return 200, wf
        if len(parts) == 5:
            selector = (
                path.rsplit("listOptions.labelSelector=", maxsplit=1)[-1]
                .replace("%3D", "=")
                .replace("%2F", "/")
            )
            key, value = selector.split("&")[0].split("=")
            items = [w for w in self.workflows.values() if w["metadata"]["labels"].get(key) == value]
            return 200, {"metadata": {}, "items": items or None}
        return 404, {"code": 5, "message": f'workflows.argoproj.io "{parts[-1]}" not found', "namespace": ns}


@pytest.fixture
def argo() -> Iterator[FakeArgo]:
    fake = FakeArgo()
    with json_endpoint(fake.serve) as endpoint:
        fake.endpoint, fake.url = endpoint, endpoint.url
        yield fake


def settings_for(fake: FakeArgo, token: str | None = TOKEN) -> Settings:
    return Settings(argo_server=fake.url, argo_token=token, argo_namespace="replayrec")


def test_the_plugins_are_the_templates_enum() -> None:
    (plugin,) = [p for p in TEMPLATE["spec"]["arguments"]["parameters"] if p["name"] == "plugin"]
    from replayrec.infra._argo import PLUGINS

    assert tuple(plugin["enum"]) == PLUGINS


@pytest.mark.integration
def test_submit_then_status_by_name_and_by_plugin(argo: FakeArgo) -> None:
    settings = settings_for(argo)
    run = argo_submit(
        settings, "din", dataset="amazon-electronics-2014-1m", parameters={"git-commit": "abc123"}
    )
    assert argo.errors == [], "the body is a valid WorkflowSubmitRequest"
    (sent,) = [r for r in argo.requests if r["body"]]
    assert sent["path"] == "/api/v1/workflows/replayrec/submit"
    assert sent["body"] == {
        "namespace": "replayrec",
        "resourceKind": "WorkflowTemplate",
        "resourceName": "replayrec-promotion",
        "submitOptions": {
            "generateName": "replayrec-promotion-din-",
            "labels": "replayrec.io/plugin=din",
            "parameters": ["plugin=din", "dataset=amazon-electronics-2014-1m", "git-commit=abc123"],
        },
    }
    assert (run.name, run.namespace, run.plugin, run.phase) == (
        "replayrec-promotion-din-x7k2p", "replayrec", "din", "Pending",
    )  # fmt: skip
    by_name = argo_status(settings, name=run.name)
    assert by_name.phase == "Running"
    assert by_name.steps == {"evaluate": "Running", "train": "Succeeded"}
    assert argo_status(settings, plugin="din").name == run.name


@pytest.mark.integration
def test_refusals_are_clear(argo: FakeArgo) -> None:
    with pytest.raises(ConfigError, match=r"unknown plugin 'popularity'.*available: lightgcn, din, ranknet"):
        argo_submit(settings_for(argo), "popularity")
    with pytest.raises(InfraError, match=r"Argo server submit: HTTP 401.*token not valid"):
        argo_submit(settings_for(argo, token="wrong"), "din")
    with pytest.raises(InfraError, match=r"HTTP 400.*parameters not in the template: \['datset'\]"):
        argo_submit(settings_for(argo), "din", parameters={"datset": "x"})
    with pytest.raises(InfraError, match="no replayrec-promotion run for ranknet"):
        argo_status(settings_for(argo), plugin="ranknet")
    with pytest.raises(InfraError, match=r"get workflow: HTTP 404.*not found"):
        argo_status(settings_for(argo), name="replayrec-promotion-din-nope")
    with pytest.raises(ConfigError, match="set REPLAYREC_ARGO_SERVER"):
        argo_submit(Settings(argo_server=None), "din")


@pytest.mark.integration
def test_cli_submit_and_status_with_settings_from_the_environment(argo: FakeArgo, tmp_path: Path) -> None:
    env = {**os.environ, "REPLAYREC_ARGO_SERVER": argo.url, "REPLAYREC_ARGO_TOKEN": TOKEN,
           "REPLAYREC_STATE_DIR": str(tmp_path / "state")}  # fmt: skip

    def replayrec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replayrec", "argo", *args], capture_output=True, text=True, env=env,
            timeout=120, check=False,
        )  # fmt: skip

    submitted = replayrec("submit", "ranknet", "--json")
    assert submitted.returncode == 0, submitted.stderr
    name = json.loads(submitted.stdout)["name"]
    status = replayrec("status", name)
    assert status.returncode == 0, status.stderr
    assert f"replayrec/{name}: Running" in status.stdout
    assert "train        Succeeded" in status.stdout
    env["REPLAYREC_ARGO_TOKEN"] = "wrong"
    refused = replayrec("status", name)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: Argo server get workflow: HTTP 401")
