"""``replayrec optimize``: a trained artifact turned into a serving variant (FP16 tables, an ONNX Runtime
graph, dynamic INT8) by its plugin's optimizer, written as a new artifact beside it with its lineage in
``meta.json`` and registered as a new model version that names its parent. The variant loads through the
same stage contract as the trained model (the stage reads what the artifact holds)."""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from replayrec.artifacts import (
    ARTIFACT_HISTORY,
    ARTIFACT_IDS,
    ARTIFACT_META,
    ARTIFACT_ONNX,
    ARTIFACT_UPSTREAM,
    ARTIFACT_WEIGHTS,
    artifact_meta,
)
from replayrec.config import Settings
from replayrec.data import default_dataset
from replayrec.errors import ConfigError, PluginError
from replayrec.registry import ModelRegistry, VersionInfo, resolve_model, tracking_uri
from replayrec.training import METHODS, OPTIMIZER_GROUP, Method, OptimizeJob

__all__ = [
    "OptimizeRequest",
    "OptimizeResult",
    "artifact_size_mb",
    "load_optimizer",
    "optimize_artifact",
    "optimize_model",
    "optimized_dir",
]

log = logging.getLogger("replayrec.application")

Optimizer = Callable[[OptimizeJob], dict[str, Any]]
_COPIED = (ARTIFACT_IDS, ARTIFACT_UPSTREAM, ARTIFACT_HISTORY)
_TOOLS = ("onnxruntime", "onnx", "onnxscript", "torch", "numpy")


@dataclass(frozen=True)
class OptimizeRequest:
    plugin: str
    #: the trained model: an artifact directory or ``<plugin>@<alias>``
    model: str
    method: str
    #: ``int8`` only: the weight grid (8 = plain INT8; fewer bits = a coarser grid, to study accuracy loss)
    bits: int = 8
    dataset: str | None = None
    tracking_uri: str | None = None
    register: bool = True


@dataclass(frozen=True)
class OptimizeResult:
    plugin: str
    method: str
    bits: int
    artifact: Path
    parent: Path
    size_mb: float
    parent_size_mb: float
    seconds: float
    reused: bool
    version: str | None = None
    parent_version: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(artifact=str(self.artifact), parent=str(self.parent))
        return out


def load_optimizer(plugin: str) -> Optimizer:
    """The plugin's optimizer (entry point group ``replayrec.optimizers``); fails naming the plugins that
    have one."""
    eps = {ep.name: ep for ep in md.entry_points(group=OPTIMIZER_GROUP)}
    if plugin not in eps:
        names = ", ".join(sorted(eps)) or "none installed"
        raise PluginError(f"plugin {plugin!r} has no optimizer; plugins with one: {names}")
    try:
        obj = eps[plugin].load()
    except ModuleNotFoundError as exc:
        raise PluginError(
            f"the {plugin} optimizer needs its training dependencies ({exc.name} is missing): install the "
            "plugin's [train] extra"
        ) from exc
    if not callable(obj):
        raise PluginError(f"the {plugin} optimizer {eps[plugin].value} is not callable")
    return cast(Optimizer, obj)


def artifact_size_mb(path: Path) -> float:
    """What serving reads of an artifact: its weights and its graph, in MB."""
    files = [path / ARTIFACT_WEIGHTS, path / ARTIFACT_ONNX]
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 1e6, 3)


def _check(method: str, bits: int) -> Method:
    if method not in METHODS:
        raise ConfigError(f"unknown optimisation method {method!r}; expected one of {', '.join(METHODS)}")
    if method != "int8" and bits != 8:
        raise ConfigError(f"--bits applies to int8 only, not {method}")
    if not 2 <= bits <= 8:
        raise ConfigError(f"--bits must lie in [2, 8], got {bits}")
    return method


def optimized_dir(source: Path, method: str, bits: int = 8) -> Path:
    """Where the variant of ``source`` lives: ``<artifacts>/<plugin>/<dataset>/optimized/<name>-<method>``
    (outside the trained artifacts, so ``<plugin>@latest`` stays the newest trained model)."""
    suffix = method if bits == 8 else f"{method}-{bits}bit"
    return source.parent / "optimized" / f"{source.name}-{suffix}"


def _tool_versions() -> dict[str, str]:
    out = {}
    for name in _TOOLS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def optimize_artifact(source: Path, method: str, bits: int = 8) -> tuple[Path, dict[str, Any], bool]:
    """Write (or reuse) the ``method`` variant of the trained artifact ``source``: its JSON files copied,
    the plugin's optimizer writing the weights / graph, ``meta.json`` recording the lineage; built in a
    scratch directory and moved into place whole. Returns (variant, its optimisation record, reused)."""
    checked = _check(method, bits)
    meta = artifact_meta(source)
    if meta.get("optimization"):
        was = meta["optimization"].get("method")
        raise ConfigError(f"{source} is already an optimised ({was}) artifact: optimise its trained parent")
    out = optimized_dir(source, method, bits)
    if (out / ARTIFACT_META).is_file():
        return out, dict(artifact_meta(out)["optimization"]), True
    optimizer = load_optimizer(str(meta.get("plugin")))
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        for name in _COPIED:
            if (source / name).is_file():
                shutil.copy2(source / name, scratch / name)
        info = optimizer(OptimizeJob(source.resolve(), scratch, checked, bits))
        record = {
            "method": method,
            "bits": bits,
            "parent": str(source.resolve()),
            "model": info,
            "tools": _tool_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (scratch / ARTIFACT_META).write_text(json.dumps({**meta, "optimization": record}, indent=2))
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out, record, False


def _version_of(reg: ModelRegistry, plugin: str, artifact: Path) -> VersionInfo | None:
    return next((v for v in reg.versions(plugin) if v.tags.get("replayrec.artifact") == str(artifact)), None)


def optimize_model(settings: Settings, req: OptimizeRequest) -> OptimizeResult:
    """Resolve the trained model, write its variant, and (``register``) register it as a new version of the
    plugin's registered model with tags ``optimization``, ``optimization.bits``, ``optimized_from``."""
    _check(req.method, req.bits)
    dataset = req.dataset or default_dataset(settings)[0]
    source = resolve_model(req.model, settings, dataset, req.plugin, req.tracking_uri)
    t0 = time.perf_counter()
    out, record, reused = optimize_artifact(source, req.method, req.bits)
    seconds = round(time.perf_counter() - t0, 2)
    version = parent_version = None
    if req.register:
        reg = ModelRegistry(tracking_uri(settings, req.tracking_uri))
        parent = _version_of(reg, req.plugin, source)
        parent_version = parent.version if parent is not None else None
        found = _version_of(reg, req.plugin, out.resolve())
        mv = found or reg.register(out)
        tags = {
            "optimization": req.method,
            "optimization.bits": str(req.bits),
            "optimized_from": parent_version or str(source),
            "parent_artifact": str(source),
        }
        reg.set_tags(req.plugin, mv.version, tags)
        version = mv.version
    log.info(f"{req.plugin} {req.method}: {out} ({'reused' if reused else f'{seconds}s'})")
    return OptimizeResult(
        plugin=req.plugin,
        method=req.method,
        bits=req.bits,
        artifact=out,
        parent=source,
        size_mb=artifact_size_mb(out),
        parent_size_mb=artifact_size_mb(source),
        seconds=seconds,
        reused=reused,
        version=version,
        parent_version=parent_version,
        info=dict(record.get("model", {})),
    )
