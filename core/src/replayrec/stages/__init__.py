"""Stage contracts and the types that flow between stages."""

from replayrec.stages._base import (
    FloatArray,
    Rank,
    Recall,
    Rerank,
    Stage,
    StageConfig,
    StageContext,
    topk_candidates,
)
from replayrec.stages._types import Candidate, Request

__all__ = [
    "Candidate",
    "FloatArray",
    "Rank",
    "Recall",
    "Request",
    "Rerank",
    "Stage",
    "StageConfig",
    "StageContext",
    "topk_candidates",
]
