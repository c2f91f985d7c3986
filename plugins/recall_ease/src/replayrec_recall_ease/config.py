"""Typed, closed configuration: the serving stage's and the trainer's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from replayrec.stages import StageConfig

__all__ = ["DEFAULT_LAMBDA_GRID", "MONITORS", "EaseConfig", "EaseTrainConfig"]

#: what validation computes (the runner's cut-offs 10, 20, 200), so what `monitor` may name
MONITORS = (
    *(f"{m}@{k}" for m in ("ndcg", "hr", "recall") for k in (10, 20, 200)),
    "mrr",
    "gauc",
)

#: ``lambda: validate`` chooses λ from these multiples of the mean diagonal of XᵀX (the mean count of the
#: fitted items), so one default fits every catalogue. Validation NDCG@10 peaked at 2.5-5x on books (top
#: 10k items) and 5-10x on electronics (all 15.7k), flat within a factor of two around the peak
DEFAULT_LAMBDA_GRID = (2.0, 4.0, 8.0, 16.0)


class EaseConfig(StageConfig):
    """Serving: how a request's history weighs the rows of B.

    A history item ``steps`` events before the newest weighs ``exp(-recency_decay * steps)`` (0: every
    item 1, EASE's binary ``x_u``); an item repeated in the history counts once, at its newest position."""

    recency_decay: float = Field(default=0.0, ge=0, description="history weight exp(-decay * steps back)")


class EaseTrainConfig(BaseModel):
    """Training: the closed form's λ (or the grid it is chosen from), the items kept, the pruning."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    lambda_: float | Literal["validate"] = Field(
        default="validate",
        alias="lambda",
        description="EASE's L2 weight λ (absolute, as in the paper), or 'validate': the best of "
        "lambda_grid × mean(diag XᵀX) on the validation requests by `monitor`",
    )
    lambda_grid: tuple[float, ...] = Field(
        default=DEFAULT_LAMBDA_GRID,
        min_length=1,
        description="λ candidates of 'validate', as multiples of the mean diagonal of XᵀX",
    )
    max_items: int = Field(
        default=20_000,
        gt=1,
        description="fit B on the most-interacted items only (dense float32 n²: 20k items = 1.6 GB per "
        "matrix, two of them); the others get no EASE score, only the popularity prior",
    )
    neighbours: int = Field(default=200, gt=0, description="entries kept per row of B (largest values)")
    dtype: Literal["float32", "float64"] = Field(
        default="float32", description="precision of the Gram matrix and its inverse"
    )
    monitor: str = Field(default="ndcg@10", description="validation metric choosing λ (and the runner's)")
    valid_users: int | None = Field(
        default=None, gt=0, description="validate on at most this many of the validation requests (seeded)"
    )
    threads: int = Field(
        default=1,
        ge=0,
        description="BLAS threads of the factorisation (0: the library's default). 1 by default: with "
        "another process on a 2-core machine, two OpenBLAS threads were 4-10x slower than one",
    )
    seed: int = 0

    @field_validator("lambda_")
    @classmethod
    def _positive_lambda(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not v > 0:
            raise ValueError("lambda must be positive (or 'validate')")
        return v

    @field_validator("monitor")
    @classmethod
    def _known_monitor(cls, v: str) -> str:
        if v not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}")
        return v

    @field_validator("lambda_grid")
    @classmethod
    def _positive_grid(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not all(x > 0 for x in v):
            raise ValueError("every lambda_grid entry must be positive")
        return v
