"""Cascade configuration: which plugin runs each stage, with how many candidates.

YAML shape (see ``default.yaml``)::

    recall:
      k: 200
      merge: quota            # quota | round_robin | weighted_sum
      channels:
        - {type: itemcf, quota: 150, weight: 1.0, neighbours: 200}
        - {type: popularity, quota: 50, mode: recent}
    rank:   {type: passthrough, k: 50}
    rerank: {type: passthrough, k: 10}

Inside a stage or channel entry, ``type`` names the entry point; ``k``, ``quota``, ``weight`` and ``model``
are cascade keys; every other key belongs to the plugin's own ``Config`` (validated there, unknown keys
rejected).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from replayrec.cascade._rules import Rule
from replayrec.errors import ConfigError, describe_validation_error

__all__ = [
    "CascadeConfig",
    "ChannelSpec",
    "RecallSpec",
    "StageSpec",
    "default_cascade_path",
    "load_cascade",
    "read_cascade_layout",
]

_CASCADE_KEYS = {"type", "k", "quota", "weight", "model"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_plugin_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = _CASCADE_KEYS | {"options"}
        options = dict(data.get("options", {}))
        options.update({k: v for k, v in data.items() if k not in known})
        return {**{k: v for k, v in data.items() if k in known}, "options": options}


class ChannelSpec(_Spec):
    quota: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, ge=0)


class StageSpec(_Spec):
    k: int = Field(gt=0)


class RecallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    k: int = Field(default=200, gt=0)
    merge: Literal["quota", "round_robin", "weighted_sum"] = "quota"
    channels: list[ChannelSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single_channel_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" in data and "channels" not in data:
            rest = {k: v for k, v in data.items() if k not in ("k", "merge")}
            return {"k": data.get("k", 200), "merge": data.get("merge", "quota"), "channels": [rest]}
        return data


class CascadeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    recall: RecallSpec
    rank: StageSpec = StageSpec(type="passthrough", k=50)
    rerank: StageSpec = StageSpec(type="passthrough", k=10)
    #: business rules applied after the models, in order (see ``replayrec.cascade._rules``)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _counts_shrink(self) -> CascadeConfig:
        if not self.recall.k >= self.rank.k >= self.rerank.k:
            raise ValueError(
                f"candidate counts must not grow along the cascade: recall {self.recall.k}, "
                f"rank {self.rank.k}, rerank {self.rerank.k}"
            )
        return self

    @classmethod
    def from_mapping(cls, data: Any, source: str = "cascade config") -> CascadeConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {source}: {describe_validation_error(exc)}") from None


def default_cascade_path() -> Path:
    return Path(__file__).with_name("default.yaml")


def read_cascade_layout(path: Path | str | None = None) -> dict[str, Any]:
    """A cascade YAML as its mapping (model references as written), checked to be a valid cascade."""
    p = Path(path) if path is not None else default_cascade_path()
    if not p.is_file():
        raise ConfigError(f"cascade config {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"cascade config {p} is not valid YAML: {exc}") from None
    CascadeConfig.from_mapping(data, source=f"cascade config {p}")
    return dict(data)


def load_cascade(path: Path | str | None = None) -> CascadeConfig:
    p = Path(path) if path is not None else default_cascade_path()
    return CascadeConfig.from_mapping(read_cascade_layout(p), source=f"cascade config {p}")
