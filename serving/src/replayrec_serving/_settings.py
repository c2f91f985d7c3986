"""The service's settings: one pydantic-settings class (``REPLAYREC_*``), built by the app factory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from replayrec.config import Settings

__all__ = ["FaultSpec", "ServiceSettings", "StageName", "default_serving_cascade"]

StageName = Literal["recall", "rank", "rerank"]


def _budgets() -> dict[StageName, float]:
    return {"recall": 40.0, "rank": 40.0, "rerank": 25.0}


def default_serving_cascade() -> Path:
    """LightGCN@prod → DIN@prod → RankNet@prod (the shipped serving cascade)."""
    return Path(__file__).with_name("cascade.yaml")


class FaultSpec(BaseModel):
    """A chaos drill for one stage (like the promotion pipeline's ``--inject-canary-*``): delay, failures."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    error_rate: float = Field(default=0.0, ge=0, le=1)


class ServiceSettings(Settings):
    """Everything ``replayrec serve`` and ``create_app`` read (environment ``REPLAYREC_*``; the core
    settings — state and data directories, broker, Redis, namespace — included)."""

    model_config = SettingsConfigDict(env_prefix="REPLAYREC_", extra="ignore", env_nested_delimiter="__")

    host: str = Field(default="127.0.0.1", description="interface the service binds (loopback by default)")
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    inflight: int = Field(default=2, ge=1, le=256, description="cascades computed at once per worker")
    dataset: str | None = Field(default=None, description="the catalogue served (default: the prepared one)")
    cascade: Path | None = Field(
        default=None, description="cascade YAML (default: LightGCN→DIN→RankNet @prod)"
    )
    tracking_uri: str | None = Field(default=None, description="MLflow registry URI")
    train_until: float | None = Field(
        default=None,
        description="Unix seconds: the cut the models were trained at; the fitted channels (popularity, "
        "item-CF) and the offline fallbacks see only the dataset's events before it",
    )
    admin_token: SecretStr | None = Field(default=None, description="admin bearer token (unset: admin off)")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000"], description="the UI's origin(s)"
    )
    cache_ttl_s: int = Field(default=30, ge=0, le=86_400, description="result cache TTL (0: no cache)")
    budget_ms: dict[StageName, float] = Field(
        default_factory=_budgets,
        description="per-stage time budget; over it, the previous stage's order answers",
    )
    canary_fraction: float = Field(default=0.1, ge=0, le=1, description="share of users on the canary arm")
    canary_salt: str = Field(default="replayrec-canary", min_length=1, max_length=128)
    registry_poll_s: float = Field(default=5.0, gt=0, le=3600, description="how often aliases are checked")
    experiment_poll_s: float = Field(default=0.25, gt=0, le=60, description="A/B experiment re-read")
    max_batch: int = Field(default=1000, ge=1, le=100_000, description="events per POST /v1/events")
    max_body_bytes: int = Field(default=4 * 2**20, ge=1024)
    popularity_window_days: int = Field(default=30, ge=1, le=3650, description="cold-start window")
    item_stats_ttl_s: float = Field(default=5.0, ge=0, le=3600, description="item statistics reuse, s")
    warmup_requests: int = Field(default=20, ge=0, le=10_000, description="warm-up requests")
    faults: dict[StageName, FaultSpec] = Field(default_factory=dict)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: JSON, or comma-separated
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def admin_secret(self) -> bytes | None:
        if self.admin_token is None or not self.admin_token.get_secret_value():
            return None
        return self.admin_token.get_secret_value().encode()

    @property
    def serve_dir(self) -> Path:
        return self.state_dir / "serve"
