"""The committed Argo YAML is exactly what argo/workflows.py renders, validates against the official Argo
Workflows JSON schema (strict: unknown keys are errors), and every reference in it resolves."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]
RENDERED = ROOT / "argo" / "rendered"


def _schema_path() -> Path:
    """``../shared/schemas/…`` beside the checkout, or beside the data directory CI points at."""
    rel = Path("schemas") / "argo-workflows" / "schema.json"
    candidates = [ROOT.parent / "shared" / rel]
    if os.environ.get("REPLAYREC_DATA_DIR"):
        candidates.append(Path(os.environ["REPLAYREC_DATA_DIR"]).parent / rel)
    return next((p for p in candidates if p.is_file()), candidates[0])


SCHEMA = _schema_path()
KINDS = {
    "WorkflowTemplate": "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    "CronWorkflow": "io.argoproj.workflow.v1alpha1.CronWorkflow",
}
STEPS = ["train", "evaluate", "optimize", "stage", "canary", "prod"]


def _docs() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(RENDERED.glob("*.yaml"))}


def test_rendered_yaml_matches_the_generator(tmp_path: Path) -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "argo" / "render.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fresh = subprocess.run(
        [sys.executable, str(ROOT / "argo" / "render.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(_docs())


def test_golden_check_catches_a_hand_edit(tmp_path: Path) -> None:
    for p in RENDERED.glob("*.yaml"):
        (tmp_path / p.name).write_text(p.read_text())
    path = tmp_path / "promotion-template.yaml"
    path.write_text(path.read_text().replace("limit: 2", "limit: 5", 1))
    check = subprocess.run(
        [sys.executable, str(ROOT / "argo" / "render.py"), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert "+      limit: 2" in check.stdout


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the quirks PROVENANCE.md lists fixed in memory: IntOrString / Quantity accept
    numbers, and every object definition rejects unknown keys."""
    defs = copy.deepcopy(schema["definitions"])
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    for d in defs.values():
        if isinstance(d, dict) and "properties" in d:
            d["additionalProperties"] = False
    return defs


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    if not SCHEMA.is_file():
        if os.environ.get("REPLAYREC_REQUIRE_SHARED"):  # CI: the schema must be there, never skip
            pytest.fail(f"no Argo schema at {SCHEMA}")
        pytest.skip(f"no Argo schema at {SCHEMA}")
    return _strict(json.loads(SCHEMA.read_text()))


def _validator(definitions: dict[str, Any], kind: str) -> Draft202012Validator:
    return Draft202012Validator(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "definitions": definitions,
            "$ref": f"#/definitions/{KINDS[kind]}",
        }
    )


@pytest.mark.parametrize("name", sorted(p.name for p in RENDERED.glob("*.yaml")))
def test_validates_against_the_argo_schema(definitions: dict[str, Any], name: str) -> None:
    doc = _docs()[name]
    errors = sorted(_validator(definitions, doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_the_strict_schema_rejects_a_typo(definitions: dict[str, Any]) -> None:
    doc = _docs()["promotion-template.yaml"]
    bad = copy.deepcopy(doc)
    bad["spec"]["templates"][-1]["dag"]["tasks"][1]["dependz"] = "train"
    assert list(_validator(definitions, "WorkflowTemplate").iter_errors(bad))


def _references(doc: dict[str, Any]) -> list[str]:
    """Every dangling reference in a WorkflowTemplate: entrypoint, task templates, dependencies and the
    ``tasks.X`` / ``inputs.parameters.Y`` / ``workflow.parameters.Z`` expressions."""
    spec = doc["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    wf_params = {p["name"] for p in spec.get("arguments", {}).get("parameters", [])}
    problems = []
    if spec["entrypoint"] not in templates:
        problems.append(f"entrypoint {spec['entrypoint']!r}")
    for t in templates.values():
        text = yaml.safe_dump(t)
        inputs = {p["name"] for p in t.get("inputs", {}).get("parameters", [])}
        problems += [
            f"{t['name']}: inputs.{p}"
            for p in re.findall(r"inputs\.parameters\.([\w-]+)", text)
            if p not in inputs
        ]
        problems += [
            f"{t['name']}: workflow.{p}"
            for p in re.findall(r"workflow\.parameters\.([\w-]+)", text)
            if p not in wf_params
        ]
        tasks = {k["name"]: k for k in t.get("dag", {}).get("tasks", [])}
        for task in tasks.values():
            target = templates.get(task["template"])
            if target is None:
                problems.append(f"task {task['name']}: template {task['template']!r}")
                continue
            for dep in re.findall(r"[\w-]+", task.get("depends", "")):
                if dep not in tasks:
                    problems.append(f"task {task['name']}: depends on {dep!r}")
            given = {p["name"] for p in task.get("arguments", {}).get("parameters", [])}
            needed = {p["name"] for p in target.get("inputs", {}).get("parameters", []) if "value" not in p}
            problems += [f"task {task['name']}: missing input {n!r}" for n in needed - given]
            body = yaml.safe_dump(task)
            for ref_task, kind, name in re.findall(
                r"tasks\.([\w-]+)\.outputs\.(parameters|artifacts)\.([\w-]+)", body
            ):
                src = templates.get(tasks.get(ref_task, {}).get("template", ""), {})
                outs = {o["name"] for o in src.get("outputs", {}).get(kind, [])}
                if name not in outs:
                    problems.append(f"task {task['name']}: tasks.{ref_task}.outputs.{kind}.{name}")
    return problems


def test_every_reference_resolves() -> None:
    doc = _docs()["promotion-template.yaml"]
    assert _references(doc) == []
    broken = copy.deepcopy(doc)
    dag = broken["spec"]["templates"][-1]["dag"]["tasks"]
    dag[2]["depends"] = "evaluat"
    dag[3]["when"] = "{{tasks.stage.outputs.parameters.pased}} == true"
    broken["spec"]["entrypoint"] = "nope"
    assert len(_references(broken)) == 3


def test_the_dag_is_the_local_pipeline() -> None:
    """Same steps, same order, each gated on the previous one's `passed`, each running the CLI."""
    spec = _docs()["promotion-template.yaml"]["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    tasks = templates[spec["entrypoint"]]["dag"]["tasks"]
    assert [t["name"] for t in tasks] == STEPS
    for prev, task in itertools.pairwise(tasks):
        assert task["depends"] == prev["name"]
        assert task["when"] == f"{{{{tasks.{prev['name']}.outputs.parameters.passed}}}} == true"
    for name in ("train", "gate"):
        c = templates[name]["container"]
        assert c["command"] == ["replayrec"]
        assert c["args"][:2] == ["pipeline", "step"]
        assert templates[name]["retryStrategy"]["limit"] == 2
    assert templates["train"]["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_cron_workflows_retrain_every_plugin_through_the_template() -> None:
    crons = {d["metadata"]["name"]: d for d in _docs().values() if d["kind"] == "CronWorkflow"}
    plugins = {d["spec"]["workflowSpec"]["arguments"]["parameters"][0]["value"] for d in crons.values()}
    template = _docs()["promotion-template.yaml"]
    allowed = template["spec"]["arguments"]["parameters"][0]["enum"]
    assert plugins == set(allowed)
    for d in crons.values():
        assert d["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == template["metadata"]["name"]
        assert d["spec"]["concurrencyPolicy"] == "Forbid"
        assert len(d["spec"]["schedules"][0].split()) == 5
