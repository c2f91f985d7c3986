"""A/B experiments: arms are cascade configurations (a plugin swap), users split by a salted hash; stored in
Redis (``<namespace>:serve:experiment``) so every worker of every replica applies the same one.

``replayrec ab set`` and ``PUT /v1/admin/experiment`` write it; each worker re-reads the key a few times a
second and swaps its arms in without a restart. A ``shadow`` arm is scored on live traffic and compared with
what was shown, never shown itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from replayrec.cascade import CascadeConfig
from replayrec.errors import ConfigError, describe_validation_error
from replayrec.promotion import canary_bucket

__all__ = ["Experiment", "ExperimentArm", "ExperimentStore", "bucket", "experiment_key"]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"


#: a user's position in [0, 1) for a salt: the promotion pipeline's canary hash, so the service and the
#: pipeline route a user the same way
bucket = canary_bucket


class ExperimentArm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME)
    #: share of the traffic; 0: served only when asked for by name (``?arm=ab:<name>``, an admin's request)
    weight: float = Field(default=1.0, ge=0, le=1000)
    cascade: dict[str, Any]
    #: the online-store view this arm reads profiles and item statistics from: a snapshot of the live store
    #: (``OnlineFeatures.copy_to``, e.g. a nightly batch); default: the live store the stream keeps
    features: str | None = Field(default=None, pattern=NAME)

    @field_validator("cascade")
    @classmethod
    def _is_a_cascade(cls, value: dict[str, Any]) -> dict[str, Any]:
        CascadeConfig.model_validate(value)  # its errors become this arm's validation error
        return value


class Experiment(BaseModel):
    """``arms`` share the traffic by ``weight`` (users by ``bucket(user, salt)``); ``shadow`` runs beside."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME)
    salt: str = Field(min_length=1, max_length=128)
    arms: list[ExperimentArm] = Field(min_length=1, max_length=8)
    shadow: ExperimentArm | None = None
    updated_ms: int = 0

    @model_validator(mode="after")
    def _unique(self) -> Experiment:
        names = [a.name for a in self.arms] + ([self.shadow.name] if self.shadow else [])
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        return self

    def arm_for(self, user: str | int) -> str | None:
        """The arm ``user`` is routed to; None when no arm takes traffic (every weight 0: prod serves)."""
        total = sum(a.weight for a in self.arms)
        if total <= 0:
            return None
        x = bucket(user, self.salt) * total
        acc = 0.0
        for a in self.arms:
            acc += a.weight
            if x < acc:
                return a.name
        return [a for a in self.arms if a.weight > 0][-1].name

    @classmethod
    def parse(cls, data: Any, source: str = "experiment") -> Experiment:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {source}: {describe_validation_error(exc)}") from None


def experiment_key(namespace: str) -> str:
    return f"{namespace}:serve:experiment"


class ExperimentStore:
    """The experiment in Redis: written whole, read whole."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.r: Any = client
        self.key = experiment_key(namespace)

    def set(self, experiment: Experiment) -> Experiment:
        stamped = experiment.model_copy(update={"updated_ms": int(time.time() * 1000)})
        self.r.set(self.key, stamped.model_dump_json())
        return stamped

    def clear(self) -> bool:
        return bool(self.r.delete(self.key))

    def raw(self) -> bytes | None:
        value = self.r.get(self.key)
        return bytes(value) if value is not None else None

    def get(self) -> Experiment | None:
        raw = self.raw()
        return None if raw is None else self.decode(raw)

    @staticmethod
    def decode(raw: bytes) -> Experiment:
        try:
            return Experiment.parse(json.loads(raw), source="stored experiment")
        except ValueError as exc:
            raise ConfigError(f"the stored experiment is not valid: {exc}") from None
