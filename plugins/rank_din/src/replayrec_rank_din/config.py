"""Typed, closed configuration: the serving stage's and the trainer's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from replayrec.cascade import ranker_recall
from replayrec.features import FeatureSpec
from replayrec.stages import StageConfig

__all__ = ["DINConfig", "DINTrainConfig"]

#: the history the network reads by default: the newest events of a user profile (core's feature definition)
RECENT_EVENTS = FeatureSpec().recent_events


class DINConfig(StageConfig):
    """Serving: the network's shape comes from the weights; these keys control how requests are read."""

    max_history: int = Field(
        default=RECENT_EVENTS, gt=0, description="most recent history items the model attends to"
    )
    explain: bool = Field(default=True, description="add 'because you read …' from the top attention weight")
    recall_blend: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="weight of the incoming (recall) order in the score: 0 = DIN alone, 1 = the recall's "
        "order (stage.blend_with_order); training chooses it on the validation requests",
    )


class DINTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # where the candidates come from: a recall stage spec ({type: lightgcn, model: lightgcn@latest}) or
    # several channels ({merge, channels: [...]}); default: core's three channels (cascade.ranker_recall)
    recall: dict[str, Any] = Field(default_factory=ranker_recall)
    recall_k: int = Field(default=200, gt=0, description="candidates per moment (the cascade's recall depth)")
    hard_negatives: int = Field(default=24, ge=0, description="negatives drawn from the recall candidates")
    random_negatives: int = Field(default=8, ge=0, description="negatives drawn uniformly from the catalogue")
    min_history: int = Field(default=1, ge=1, description="training targets need this many earlier events")
    max_targets: int | None = Field(
        default=None, gt=0, description="train on the most recent N targets only (quick profiles)"
    )
    max_history: int = Field(default=RECENT_EVENTS, gt=0)

    item_dim: int = Field(default=64, gt=0)
    init_item_embeddings: Literal["recall", "random"] = Field(
        default="recall",
        description="warm-start item id embeddings from the recall stage's item vectors (when it has them)",
    )
    group_dim: int = Field(default=8, ge=1)
    context_dim: int = Field(default=8, ge=1)
    attention_hidden: list[int] = Field(default_factory=lambda: [36], min_length=1)
    mlp_hidden: list[int] = Field(default_factory=lambda: [200, 80])

    loss: Literal["softmax", "bce"] = Field(
        default="softmax", description="softmax over each target's candidates, or pointwise logistic (paper)"
    )
    mba_reg: float = Field(default=0.0, ge=0, description="mini-batch aware L2 on item embeddings (DIN §4.2)")
    lr: float = Field(default=2e-3, gt=0)
    batch_size: int = Field(default=512, gt=0)
    epochs: int = Field(default=4, gt=0, description="upper bound; early stopping usually ends sooner")
    patience: int = Field(default=1, gt=0)
    eval_every: int = Field(default=1, gt=0)
    monitor: str = "ndcg@10"
    recall_blend: float | Literal["validate"] = Field(
        default="validate",
        description="the served score's weight on the recall's order (serving key recall_blend): a number in "
        "[0, 1], or 'validate': at every validation check the weight (0, 0.05, …, 1) with the best "
        "monitored metric, so the served order is never worse on validation than DIN alone or the recall's",
    )
    valid_users: int | None = Field(
        default=None, gt=0, description="validate on at most this many of the validation requests (seeded)"
    )
    lr_decay_on_plateau: float = Field(default=1.0, gt=0, le=1)
    threads: int = Field(default=0, ge=0, description="torch threads (0: all cores)")
    seed: int = 0

    @field_validator("recall_blend")
    @classmethod
    def _blend_in_range(cls, v: float | str) -> float | str:
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("recall_blend must lie in [0, 1] (or be 'validate')")
        return v
