"""Typed, closed configuration: the serving stage's and the trainer's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from replayrec.cascade import ranker_recall
from replayrec.stages import StageConfig
from replayrec_rerank_ranknet.features import FEATURES

__all__ = ["RankNetConfig", "RankNetTrainConfig"]


class RankNetConfig(StageConfig):
    """Serving: feature parameters must match training (they are saved with the model)."""

    rank_stage: str = Field(default="din", description="the rank stage whose score is a feature")
    window_days: float = Field(default=30.0, gt=0, description="recent-popularity window")
    recent_items: int = Field(default=5, gt=0, description="history items for the similarity features")
    channels: list[str] = Field(
        default_factory=list,
        description="recall channels (their Candidate.scores names) whose scores are features: when the "
        "recall merges several channels, each one's score min-max scaled within the list (0 where it did "
        "not propose the item) and whether it proposed it",
    )
    drop: list[str] = Field(
        default_factory=list,
        description="features held at zero (the model was trained without them; set by training's "
        "drop_features)",
    )
    shuffle: list[str] = Field(
        default_factory=list,
        description="attribution only: features permuted together among each list's candidates before "
        "scoring (seeded by shuffle_seed, the user and the request time)",
    )
    shuffle_seed: int = Field(default=0, ge=0, description="seed of the shuffle")


class RankNetTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the recall behind the rank stage (core's three channels by default, as DIN's)
    recall: dict[str, Any] = Field(default_factory=ranker_recall)
    rank: dict[str, Any] = Field(default_factory=lambda: {"type": "din", "model": "din@latest"})
    recall_k: int = Field(default=200, gt=0)
    rank_k: int = Field(default=50, gt=0, description="the ranked list RankNet reorders")
    window_days: float = Field(default=30.0, gt=0)
    recent_items: int = Field(default=5, gt=0)
    channel_features: bool = Field(
        default=True, description="each recall channel's score as a feature (a multi-channel recall only)"
    )
    drop_features: list[str] = Field(
        default_factory=list,
        description="train without these features (held at zero; names from features.FEATURES), for "
        "attribution",
    )

    @field_validator("drop_features")
    @classmethod
    def _known_features(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in FEATURES and not n.startswith(("score:", "proposed:"))]
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURES)}")
        return v

    holdout: float = Field(default=0.2, gt=0, lt=1, description="share of the lists kept for early stopping")
    hidden: list[int] = Field(default_factory=lambda: [32, 16])
    lr: float = Field(default=3e-3, gt=0)
    batch_size: int = Field(default=256, gt=0)
    epochs: int = Field(default=30, gt=0)
    patience: int = Field(default=3, gt=0)
    eval_every: int = Field(default=1, gt=0)
    monitor: str = "ndcg@10"
    seed: int = 0
