"""Typed, closed configuration: the serving stage's and the trainer's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class DINTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # where the candidates come from: a recall stage spec, e.g. {type: lightgcn, model: lightgcn@latest}
    recall: dict[str, Any] = Field(default_factory=lambda: {"type": "lightgcn", "model": "lightgcn@latest"})
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
    lr_decay_on_plateau: float = Field(default=1.0, gt=0, le=1)
    threads: int = Field(default=0, ge=0, description="torch threads (0: all cores)")
    seed: int = 0
