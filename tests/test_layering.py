"""The layering rules that import-linter cannot state: no function-level import of replayrec code (only of
the heavy optional libraries, each listed), and packages import each other only through their public
``__init__`` names. Scanned from the source with ``ast``, over core and every plugin."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "core" / "src", *sorted((ROOT / "plugins").glob("*/src"))]
HEAVY = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["flake8-tidy-imports"][
        "banned-module-level-imports"
    ]
)


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for src in SOURCES:
        for file in sorted(src.rglob("*.py")):
            if "scaffold/template" in file.as_posix():
                continue
            parts = list(file.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), ast.parse(file.read_text(), str(file))))
    return out


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module or ""] if node.level == 0 else []


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """What an import brings in, dotted: ``from scipy import stats`` → ``scipy.stats``."""
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [f"{node.module}.{a.name}" for a in node.names]
    return _imported(node)


def _function_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    return found


def _package(module: str) -> str:
    """``replayrec.cascade._rules`` → ``replayrec.cascade``; ``replayrec_rank_din.stage`` → itself's top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "replayrec" else parts[0]


def test_no_function_level_imports_but_the_heavy_libraries() -> None:
    offending = []
    for module, tree in _modules():
        for node in _function_level(tree):
            for name in _targets(node):
                if not any(name == h or name.startswith(f"{h}.") for h in HEAVY):
                    offending.append(f"{module}:{node.lineno} imports {name} inside a function")
    assert offending == []
    assert {"torch", "lightning", "mlflow", "ray", "pyspark"} <= HEAVY


def test_packages_import_each_other_through_public_names_only() -> None:
    offending = []
    for module, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(node):
                parts = name.split(".")
                private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
                if private is None or not parts[0].startswith("replayrec"):
                    continue
                if _package(name) != _package(module):
                    offending.append(f"{module}:{node.lineno} imports private {name}")
    assert offending == []


def test_the_scan_sees_the_code() -> None:
    names = {m for m, _ in _modules()}
    assert {"replayrec.application", "replayrec.cli._main", "replayrec_rank_din.stage"} <= names
