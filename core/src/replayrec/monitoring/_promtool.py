"""``promtool`` (and ``amtool``) checks of the monitoring configuration: the generated Prometheus
configuration, the committed rules and their unit tests. A failed check is a result, never an exception: the
caller reports."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from replayrec.config import Settings
from replayrec.infra import CheckStep, InfraError, timed_step
from replayrec.monitoring._prometheus import (
    JOBS,
    PrometheusTools,
    prometheus_tools,
    rule_files,
    rule_tests_dir,
    write_prometheus_config,
)
from replayrec.monitoring._server import alertmanager_config

__all__ = [
    "ToolCheck",
    "check_alertmanager_config",
    "check_config",
    "check_monitoring",
    "check_rules",
    "test_rules",
]

_RULES_FOUND = re.compile(r"SUCCESS: (\d+) rules found")
_TIMEOUT_S = 120


@dataclass(frozen=True)
class ToolCheck:
    """One run of a checking tool: the command, its exit status and its output (stdout and stderr)."""

    command: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _tool_run(argv: list[str], cwd: Path | None = None) -> ToolCheck:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=_TIMEOUT_S,
            cwd=cwd, check=False,
        )  # fmt: skip
        code, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        code, output = 124, f"timed out after {_TIMEOUT_S} s: {exc.output or ''}"
    except OSError as exc:
        code, output = 127, str(exc)
    return ToolCheck(argv, code, output.strip(), round(time.perf_counter() - start, 2))


def check_config(path: Path, tools: PrometheusTools | None = None) -> ToolCheck:
    """``promtool check config``: the configuration and the rule files it names."""
    tools = tools or prometheus_tools(alertmanager=False)
    return _tool_run([str(tools.promtool), "check", "config", str(path)])


def check_rules(paths: Sequence[Path], tools: PrometheusTools | None = None) -> ToolCheck:
    """``promtool check rules``: syntax, PromQL and duplicate rules of each file."""
    tools = tools or prometheus_tools(alertmanager=False)
    return _tool_run([str(tools.promtool), "check", "rules", *map(str, paths)])


def test_rules(paths: Sequence[Path], tools: PrometheusTools | None = None) -> ToolCheck:  # noqa: PT028
    """``promtool test rules``: the unit tests (their ``rule_files`` are relative to each test file)."""
    tools = tools or prometheus_tools(alertmanager=False)
    return _tool_run([str(tools.promtool), "test", "rules", *map(str, paths)])


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into one


def check_alertmanager_config(path: Path, tools: PrometheusTools | None = None) -> ToolCheck:
    """``amtool check-config``: the Alertmanager configuration (routes, receivers, credentials files)."""
    tools = tools or prometheus_tools()
    if tools.amtool is None:
        return ToolCheck(["amtool", "check-config", str(path)], 127, "amtool is not available", 0.0)
    return _tool_run([str(tools.amtool), "check-config", str(path)])


def _as_step(
    result: ToolCheck, detail: str, numbers: dict[str, int] | None = None
) -> tuple[str, dict[str, int]]:
    if not result.ok:
        raise InfraError(f"{' '.join(result.command[1:])} failed ({result.returncode}):\n{result.output}")
    return detail, numbers or {}


def _rules_found(result: ToolCheck) -> int:
    return sum(int(n) for n in _RULES_FOUND.findall(result.output))


def check_monitoring(
    settings: Settings | None = None, tools: PrometheusTools | None = None
) -> list[CheckStep]:
    """``promtool`` on the committed rules (check, unit tests) and on a configuration generated with every job
    (``amtool`` on an Alertmanager configuration too, when Alertmanager is available); never raises for a
    failed check."""
    tools = tools or prometheus_tools()
    rules = rule_files(settings)
    tests = sorted(rule_tests_dir(settings).glob("*.yml"))
    checkout = rules[0].parents[4]

    def rel(p: Path) -> str:
        return str(p.relative_to(checkout)) if p.is_relative_to(checkout) else str(p)

    def rules_step() -> tuple[str, dict[str, int]]:
        result = check_rules(rules, tools)
        n = _rules_found(result)
        return _as_step(result, f"{n} rules in {len(rules)} files", {"rules": n, "files": len(rules)})

    def tests_step() -> tuple[str, dict[str, int]]:
        return _as_step(test_rules(tests, tools), f"{len(tests)} test files passed", {"files": len(tests)})

    steps = [
        timed_step("promtool check rules", rel(rules[0].parent), rules_step),
        timed_step("promtool test rules", rel(rule_tests_dir(settings)), tests_step),
    ]
    with tempfile.TemporaryDirectory(prefix="replayrec-prometheus-check-") as tmp:
        targets = {job: [f"127.0.0.1:{9400 + i}"] for i, job in enumerate(JOBS)}
        config = write_prometheus_config(
            Path(tmp) / "prometheus.yml", targets, rule_files=rules, alertmanagers=["127.0.0.1:9093"]
        )
        detail = f"{len(JOBS)} jobs, the rules, alerting"
        steps.append(
            timed_step("promtool check config", "generated prometheus.yml",
                       lambda: _as_step(check_config(config, tools), detail))
        )  # fmt: skip
        if tools.amtool is not None:
            steps.append(
                timed_step(
                    "amtool check-config", "generated alertmanager.yml", lambda: _am_step(Path(tmp), tools)
                )
            )
    return steps


def _am_step(folder: Path, tools: PrometheusTools) -> tuple[str, dict[str, int]]:
    token = folder / "token"
    token.write_text("check\n")
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config("http://127.0.0.1:9401/retrain", token_file=token)))
    return _as_step(check_alertmanager_config(path, tools), "the retraining route and its webhook")
