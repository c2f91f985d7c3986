"""Typed, closed configuration: the serving stage's and the trainer's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from replayrec.stages import StageConfig

__all__ = ["LightGCNConfig", "LightGCNTrainConfig"]


class LightGCNConfig(StageConfig):
    """Serving: how a request's user vector is formed.

    ``fold_in`` builds it from the request's history alone (works for users and events never seen in
    training: a new event changes the recall at once); ``trained`` uses the trained user embedding (falls back
    to fold-in for unknown users); ``blend`` adds ``blend_weight`` × the trained embedding to the fold-in.
    """

    user_vector: Literal["fold_in", "trained", "blend"] = "fold_in"
    blend_weight: float = Field(default=0.5, ge=0)
    recency_decay: float = Field(default=0.0, ge=0, description="history weight exp(-decay * steps back)")


class LightGCNTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(default=64, gt=0)
    layers: int = Field(default=3, ge=1)
    lr: float = Field(default=0.01, gt=0)
    batch_size: int = Field(default=16_384, gt=0)
    reg: float = Field(default=1e-4, ge=0, description="L2 on the batch's ego embeddings")
    epochs: int = Field(default=200, gt=0, description="upper bound; early stopping usually ends sooner")
    patience: int = Field(
        default=5, gt=0, description="validation checks without improvement before stopping"
    )
    eval_every: int = Field(default=5, gt=0, description="epochs between validation checks")
    monitor: str = "ndcg@20"
    lr_step_epoch: int | None = Field(
        default=None, gt=0, description="multiply lr by lr_step_factor from here"
    )
    lr_step_factor: float = Field(default=0.1, gt=0, le=1)
    lr_decay_on_plateau: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="multiply the learning rate by this after a check without improvement",
    )
    threads: int = Field(default=0, ge=0, description="torch threads (0: all cores)")
    seed: int = 0
