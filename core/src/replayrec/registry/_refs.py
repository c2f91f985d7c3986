"""Model references: an artifact directory, or ``<plugin>@<alias>``.

``<plugin>@latest`` is the newest artifact of that plugin trained on the dataset in the state directory;
any other alias is looked up in the MLflow model registry (registered model ``replayrec-<plugin>``), where
every ``replayrec train`` run registers its artifact as a new version.
"""

from __future__ import annotations

import re
from pathlib import Path

from replayrec.artifacts import artifact_stage_config, check_protocol, latest_artifact
from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.registry._mlflow import ModelRegistry, registered_model_name, tracking_uri

__all__ = ["REF_PATTERN", "is_model_ref", "resolve_model"]

REF_PATTERN = re.compile(r"^(?P<plugin>[A-Za-z][\w-]*)@(?P<alias>[A-Za-z][\w.-]*)$")


def is_model_ref(value: str) -> bool:
    return REF_PATTERN.match(value) is not None


def _from_registry(settings: Settings, plugin: str, alias: str, uri: str | None) -> Path:
    found = ModelRegistry(tracking_uri(settings, uri)).by_alias(plugin, alias)
    if found is None:
        raise ConfigError(
            f"model reference {plugin}@{alias}: no such alias in the registry "
            f"({registered_model_name(plugin)} has no alias {alias!r})"
        )
    return found.artifact


def resolve_model(
    ref: str | Path,
    settings: Settings,
    dataset: str,
    plugin: str | None = None,
    tracking_uri: str | None = None,
    protocol: str | None = None,
) -> Path:
    """The artifact directory ``ref`` names, checked to be a ``plugin`` model trained on ``dataset`` (and,
    with ``protocol``, on that protocol's training events; ``@latest`` is then the newest such)."""
    text = str(ref)
    m = REF_PATTERN.match(text)
    if m is not None and not Path(text).exists():
        name, alias = m["plugin"], m["alias"]
        if plugin is not None and name != plugin:
            raise ConfigError(f"model reference {text!r} names plugin {name!r}, expected {plugin!r}")
        if alias == "latest":
            path = latest_artifact(settings, name, dataset, protocol)
        else:
            path = _from_registry(settings, name, alias, tracking_uri)
        plugin = name
    else:
        path = Path(text)
        if not path.exists():
            raise ConfigError(
                f"model {text!r} is neither an artifact directory nor a <plugin>@<alias> reference"
            )
    artifact_stage_config(path, dataset, plugin)
    if protocol is not None:
        check_protocol(path, protocol)
    return path.resolve()
