"""The MLflow model registry as replayrec uses it: one registered model per plugin, aliases for the
promotion steps, tags for provenance and metrics.

Every model version carries the tag ``replayrec.artifact`` (the artifact directory it was registered
from) plus ``plugin_version``, ``core_api``, ``config``, ``dataset``, ``dataset_fingerprint``, ``git_commit``
and its metrics (``val_*`` from training, ``eval_*`` from the promotion pipeline). Aliases: ``staging``,
``canary``, ``prod`` and ``prod-previous`` (where ``prod`` pointed before its last move, for rollback).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replayrec.artifacts import artifact_meta
from replayrec.config import Settings
from replayrec.errors import ConfigError

__all__ = [
    "ALIASES",
    "PREVIOUS_PROD",
    "ModelRegistry",
    "VersionInfo",
    "git_commit",
    "metric_tag",
    "registered_model_name",
    "tracking_uri",
]

ALIASES = ("staging", "canary", "prod")
PREVIOUS_PROD = "prod-previous"
_PREFIX = "replayrec-"
_TAG_LIMIT = 4000  # MLflow caps model-version tag values; configs are cut to this with a marker


def registered_model_name(plugin: str) -> str:
    return f"{_PREFIX}{plugin}"


def tracking_uri(settings: Settings, explicit: str | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a sqlite store in the state directory."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.state_dir / 'mlflow.db').resolve()}"


def metric_tag(prefix: str, metric: str) -> str:
    """``eval`` + ``ndcg@10`` -> ``eval_ndcg_at_10`` (MLflow names allow no '@')."""
    return f"{prefix}_{metric.replace('@', '_at_')}"


def git_commit(cwd: Path | None = None) -> str:
    """The source commit: ``REPLAYREC_GIT_COMMIT`` (set in container images), else ``git rev-parse HEAD``
    with ``-dirty`` when tracked files differ from it, else ``unknown``."""
    env = os.environ.get("REPLAYREC_GIT_COMMIT")
    if env:
        return env
    if cwd is None:  # the checkout replayrec runs from (an editable install), whatever the working dir
        cwd = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


@dataclass(frozen=True)
class VersionInfo:
    plugin: str
    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    created: int = 0

    @property
    def artifact(self) -> Path:
        path = self.tags.get("replayrec.artifact")
        if not path:
            raise ConfigError(f"{self.plugin} version {self.version} has no replayrec.artifact tag")
        return Path(path)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Tags ``<prefix>_<metric>`` as floats (``eval`` -> ``{"ndcg_at_10": 0.03, ...}``)."""
        out = {}
        for k, v in self.tags.items():
            if k.startswith(prefix + "_"):
                try:
                    out[k[len(prefix) + 1 :]] = float(v)
                except ValueError:
                    continue
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "version": self.version,
            "aliases": list(self.aliases),
            "created": self.created,
            "dataset": self.tags.get("dataset"),
            "git_commit": self.tags.get("git_commit"),
            "artifact": self.tags.get("replayrec.artifact"),
            "val": self.metrics("val"),
            "eval": self.metrics("eval"),
            "gates": {k[5:]: v for k, v in sorted(self.tags.items()) if k.startswith("gate.")},
        }


def _provenance_tags(artifact: Path, meta: Mapping[str, Any]) -> dict[str, str]:
    config = json.dumps(meta.get("train_config", {}), sort_keys=True, default=str)
    if len(config) > _TAG_LIMIT:
        config = config[: _TAG_LIMIT - 12] + "…(truncated)"
    tags = {
        "replayrec.artifact": str(artifact.resolve()),
        "plugin": str(meta.get("plugin")),
        "dataset": str(meta.get("dataset")),
        "dataset_fingerprint": str(meta.get("dataset_fingerprint", "unknown")),
        "protocol": str(meta.get("protocol")),
        "plugin_version": str(meta.get("plugin_version")),
        "core_api": str(meta.get("core_api")),
        "git_commit": str(meta.get("git_commit", "unknown")),
        "config": config,
    }
    tags.update(
        {metric_tag("val", k): f"{float(v):.6f}" for k, v in dict(meta.get("val_metrics", {})).items()}
    )
    return tags


class ModelRegistry:
    """replayrec's view of an MLflow registry (any tracking URI: sqlite, ``http://`` server, PostgreSQL)."""

    def __init__(self, tracking_uri: str) -> None:
        try:
            import mlflow
        except ImportError:  # a serving install: reference models by artifact directory or <plugin>@latest
            raise ConfigError(
                "the MLflow registry needs replayrec-core[train] (mlflow is not installed); without it, "
                "name models by artifact directory or <plugin>@latest"
            ) from None

        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- registration -------------------------------------------------------------------------------------
    def _ensure_model(self, plugin: str) -> str:
        from mlflow.exceptions import MlflowException

        name = registered_model_name(plugin)
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description=f"replayrec {plugin} models")
        return name

    def register(self, artifact: Path, run_id: str | None = None) -> VersionInfo:
        """Register the artifact directory as a new version of ``replayrec-<plugin>`` with provenance tags.

        Without ``run_id`` (a model trained elsewhere) an MLflow run is created that holds a copy of the
        artifact, so the version's source is a run like any trained one."""
        meta = artifact_meta(artifact)
        plugin = str(meta.get("plugin") or "")
        if not plugin:
            raise ConfigError(f"{artifact}/meta.json names no plugin")
        name = self._ensure_model(plugin)
        if run_id is None:
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            run = self.client.create_run(exp_id, run_name=f"register-{artifact.name}")
            run_id = run.info.run_id
            self.client.log_artifacts(run_id, str(artifact))
            self.client.set_tag(run_id, "replayrec.artifact", str(artifact.resolve()))
            self.client.set_terminated(run_id)
        mv = self.client.create_model_version(
            name, source=f"runs:/{run_id}", run_id=run_id, tags=_provenance_tags(artifact, meta)
        )
        return self.get(plugin, str(mv.version))

    # -- reading ------------------------------------------------------------------------------------------
    def _info(self, plugin: str, mv: Any) -> VersionInfo:
        return VersionInfo(
            plugin,
            str(mv.version),
            tuple(sorted(getattr(mv, "aliases", []) or [])),
            dict(mv.tags or {}),
            int(mv.creation_timestamp or 0),
        )

    def get(self, plugin: str, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(registered_model_name(plugin), str(version))
        except MlflowException:
            raise ConfigError(f"{registered_model_name(plugin)} has no version {version!r}") from None
        return self._info(plugin, mv)

    def by_alias(self, plugin: str, alias: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(registered_model_name(plugin), alias)
        except MlflowException:
            return None
        return self._info(plugin, mv)

    def plugins(self) -> list[str]:
        models = self.client.search_registered_models(filter_string=f"name LIKE '{_PREFIX}%'")
        return sorted(m.name[len(_PREFIX) :] for m in models)

    def listing(self, plugin: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Every version of ``plugin`` (default: of every plugin) as dictionaries, oldest first."""
        plugins = [plugin] if plugin else self.plugins()
        return {p: [v.to_dict() for v in self.versions(p)] for p in plugins}

    def versions(self, plugin: str) -> list[VersionInfo]:
        name = registered_model_name(plugin)
        found = self.client.search_model_versions(f"name='{name}'")
        # search results carry no aliases on every store: take them from the registered model
        aliases: dict[str, list[str]] = {}
        for alias, version in dict(self.client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        out = [self._info(plugin, mv) for mv in found]
        out = [replace(v, aliases=tuple(sorted(aliases.get(v.version, [])))) for v in out]
        return sorted(out, key=lambda v: int(v.version))

    # -- aliases and tags ---------------------------------------------------------------------------------
    def set_alias(self, plugin: str, alias: str, version: str) -> None:
        self.get(plugin, version)  # a clear error for an unknown version
        self.client.set_registered_model_alias(registered_model_name(plugin), alias, str(version))

    def delete_alias(self, plugin: str, alias: str) -> None:
        if self.by_alias(plugin, alias) is not None:
            self.client.delete_registered_model_alias(registered_model_name(plugin), alias)

    def set_tags(self, plugin: str, version: str, tags: Mapping[str, Any]) -> None:
        name = registered_model_name(plugin)
        for k, v in tags.items():
            self.client.set_model_version_tag(name, str(version), k, str(v)[:_TAG_LIMIT])

    def move_prod(self, plugin: str, version: str) -> str | None:
        """Point ``prod`` at ``version``; the version it pointed at becomes ``prod-previous``. Returns it."""
        current = self.by_alias(plugin, "prod")
        if current is not None and current.version == str(version):
            return None
        self.get(plugin, version)
        if current is not None:
            self.set_alias(plugin, PREVIOUS_PROD, current.version)
        self.set_alias(plugin, "prod", version)
        return current.version if current is not None else None

    def rollback(self, plugin: str, to: str | None = None) -> tuple[str, str]:
        """Point ``prod`` back at ``prod-previous`` (or at version ``to``); the version rolled back from
        becomes ``prod-previous``, so a second rollback rolls forward again. Returns ``(from, to)``."""
        current = self.by_alias(plugin, "prod")
        if current is None:
            raise ConfigError(f"{registered_model_name(plugin)} has no prod alias to roll back")
        if to is None:
            previous = self.by_alias(plugin, PREVIOUS_PROD)
            if previous is None:
                raise ConfigError(
                    f"{registered_model_name(plugin)} has no {PREVIOUS_PROD} version; give --to VERSION"
                )
            to = previous.version
        if str(to) == current.version:
            raise ConfigError(f"prod already points at version {to}")
        self.get(plugin, str(to))
        self.set_alias(plugin, "prod", str(to))
        self.set_alias(plugin, PREVIOUS_PROD, current.version)
        return current.version, str(to)
