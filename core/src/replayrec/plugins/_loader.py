"""Entry-point discovery of stage plugins and trainers, with compatibility checks.

Groups: ``replayrec.recall``, ``replayrec.rank``, ``replayrec.rerank`` (stage classes) and
``replayrec.trainers`` (training builders, keyed by the same names). Listing skips broken plugins with a
warning; selecting one that is missing or broken fails with the available names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version
from pydantic import BaseModel, ValidationError

from replayrec import CORE_API, __version__
from replayrec.errors import ConfigError, PluginError, describe_validation_error
from replayrec.stages import Rank, Recall, Rerank, Stage, StageConfig, StageContext

__all__ = [
    "KINDS",
    "PluginInfo",
    "available",
    "build_stage",
    "check_stage_class",
    "kind_of",
    "list_plugins",
    "load_stage_class",
    "load_trainer",
    "parse_config",
]

log = logging.getLogger(__name__)

KINDS: Mapping[str, type[Stage]] = {"recall": Recall, "rank": Rank, "rerank": Rerank}
TRAINER_GROUP = "replayrec.trainers"
#: what a plugin's ``[train]`` extra brings: a trainer failing to import one of these needs that extra
TRAINING_LIBRARIES = frozenset({"torch", "lightning", "mlflow", "ray"})


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    core_api: str | None
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _entry_points(group: str) -> list[EntryPoint]:
    eps = sorted(entry_points(group=group), key=lambda e: (e.name, e.value))
    seen: dict[str, EntryPoint] = {}
    for ep in eps:  # the same distribution can be visible twice (editable + site); keep the first
        seen.setdefault(ep.name, ep)
    return list(seen.values())


def _api_compatible(declared: str) -> bool:
    try:
        d_major, d_minor = (int(x) for x in declared.split(".")[:2])
        c_major, c_minor = (int(x) for x in CORE_API.split(".")[:2])
    except ValueError:
        return False
    return d_major == c_major and d_minor <= c_minor


def _core_requirement_ok(ep: EntryPoint) -> str | None:
    """An error message when the plugin's distribution requires a different replayrec-core."""
    dist = ep.dist
    if dist is None:
        return None
    for raw in dist.requires or []:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if req.name.replace("_", "-").lower() != "replayrec-core" or req.marker is not None:
            continue
        core = Version(__version__) if __version__[0].isdigit() else None
        if core is not None and not req.specifier.contains(core, prereleases=True):
            return f"requires replayrec-core{req.specifier}, but {__version__} is installed"
    return None


def check_stage_class(kind: str, obj: object, name: str | None = None) -> type[Stage]:
    """Validate that ``obj`` is a usable stage class of ``kind``; raise :class:`PluginError` otherwise."""
    base = KINDS[kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(f"{obj!r} is not a subclass of replayrec.stages.{base.__name__}")
    if getattr(obj, "__abstractmethods__", None):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise PluginError(f"{obj.__name__} does not implement {missing}")
    declared = getattr(obj, "name", None)
    if not isinstance(declared, str) or not declared:
        raise PluginError(f"{obj.__name__} does not declare a name")
    if name is not None and declared != name:
        raise PluginError(f"{obj.__name__} declares name {declared!r} but is registered as {name!r}")
    cfg = getattr(obj, "Config", None)
    if not (isinstance(cfg, type) and issubclass(cfg, BaseModel)):
        raise PluginError(f"{obj.__name__}.Config must be a pydantic model")
    if cfg.model_config.get("extra") != "forbid":
        raise PluginError(f"{obj.__name__}.Config must reject unknown keys (extra='forbid')")
    api = getattr(obj, "core_api", None)
    if not isinstance(api, str) or not _api_compatible(api):
        raise PluginError(f"{obj.__name__} was built for core_api {api!r}; this core provides {CORE_API}")
    return obj


def _load(kind: str, ep: EntryPoint) -> type[Stage]:
    problem = _core_requirement_ok(ep)
    if problem:
        raise PluginError(problem)
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin can fail to import in any way
        raise PluginError(f"cannot import {ep.value}: {type(exc).__name__}: {exc}") from exc
    return check_stage_class(kind, obj, ep.name)


def list_plugins(kinds: Iterable[str] = ("recall", "rank", "rerank")) -> list[PluginInfo]:
    """Every registered stage plugin with its status; broken ones are reported, not raised."""
    infos: list[PluginInfo] = []
    for kind in kinds:
        for ep in _entry_points(f"replayrec.{kind}"):
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            dist_version = dist.version if dist is not None else None
            try:
                cls = _load(kind, ep)
            except PluginError as exc:
                log.warning("skipping broken %s plugin %r: %s", kind, ep.name, exc)
                infos.append(
                    PluginInfo(kind, ep.name, ep.value, dist_name, dist_version, None, False, str(exc))
                )
                continue
            infos.append(PluginInfo(kind, ep.name, ep.value, dist_name, dist_version, cls.core_api, True))
    return infos


def available(kind: str) -> list[str]:
    return [p.name for p in list_plugins([kind]) if p.ok]


def load_stage_class(kind: str, name: str) -> type[Stage]:
    """The stage class registered as ``name``; fails loudly naming the alternatives."""
    if kind not in KINDS:
        raise PluginError(f"unknown stage kind {kind!r}; expected one of {', '.join(KINDS)}")
    eps = {ep.name: ep for ep in _entry_points(f"replayrec.{kind}")}
    if name not in eps:
        names = ", ".join(available(kind)) or "none installed"
        raise PluginError(f"unknown {kind} plugin {name!r}; available: {names}")
    try:
        return _load(kind, eps[name])
    except PluginError as exc:
        names = ", ".join(available(kind)) or "none"
        raise PluginError(f"{kind} plugin {name!r} is broken: {exc}; available: {names}") from exc


def kind_of(name: str) -> str:
    """The stage kind (``recall``, ``rank``, ``rerank``) a plugin name is registered under."""
    for kind in KINDS:
        if any(ep.name == name for ep in _entry_points(f"replayrec.{kind}")):
            return kind
    names = ", ".join(f"{k}: {', '.join(available(k)) or '-'}" for k in KINDS)
    raise PluginError(f"unknown plugin {name!r}; available {names}")


def parse_config(cls: type[Stage], values: Mapping[str, Any]) -> StageConfig:
    """Validate ``values`` against the plugin's ``Config``, with a one-line error."""
    try:
        return cls.Config.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(
            f"invalid config for {cls.kind} plugin {cls.name!r}: {describe_validation_error(exc)}"
        ) from None


def build_stage(kind: str, name: str, values: Mapping[str, Any], context: StageContext) -> Stage:
    cls = load_stage_class(kind, name)
    return cls(parse_config(cls, values), context)


def load_trainer(name: str) -> Callable[..., Any]:
    eps = {ep.name: ep for ep in _entry_points(TRAINER_GROUP)}
    if name not in eps:
        names = ", ".join(sorted(eps)) or "none installed"
        raise PluginError(f"unknown trainer {name!r}; available: {names}")
    try:
        obj = eps[name].load()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_LIBRARIES:
            raise PluginError(f"trainer {name!r} is broken: ModuleNotFoundError: {exc}") from exc
        dist = eps[name].dist  # a serving install: the plugin's [train] extra is not installed
        extra = f"pip install '{dist.metadata['Name']}[train]'" if dist is not None else "its [train] extra"
        raise PluginError(
            f"trainer {name!r} needs its training dependencies ({exc.name} is missing): {extra}"
        ) from exc
    except Exception as exc:
        raise PluginError(f"trainer {name!r} is broken: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise PluginError(f"trainer {name!r} is not callable")
    return obj  # type: ignore[no-any-return]
