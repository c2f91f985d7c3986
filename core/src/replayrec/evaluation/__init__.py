"""Evaluation: protocols, exact vectorised ranking metrics, bootstrap intervals, reports."""

from replayrec.evaluation._bootstrap import bootstrap_ci, paired_lift, paired_ratio
from replayrec.evaluation._evaluate import (
    DEFAULT_KS,
    EvalResult,
    ListFn,
    build_requests,
    evaluate,
    target_ranks,
)
from replayrec.evaluation._metrics import group_auc, per_user_metrics
from replayrec.evaluation._protocols import (
    DEFAULT_HISTORY,
    PROTOCOLS,
    EvalSet,
    ProtocolSplit,
    build_split,
    temporal_cutoff,
    temporal_holdout,
)
from replayrec.evaluation._report import markdown_table, write_report
from replayrec.evaluation._slices import COLD_MAX, HEAVY_MIN, POPULAR_SHARE, slice_metrics, slice_rows

__all__ = [
    "COLD_MAX",
    "DEFAULT_HISTORY",
    "DEFAULT_KS",
    "HEAVY_MIN",
    "POPULAR_SHARE",
    "PROTOCOLS",
    "EvalResult",
    "EvalSet",
    "ListFn",
    "ProtocolSplit",
    "bootstrap_ci",
    "build_requests",
    "build_split",
    "evaluate",
    "group_auc",
    "markdown_table",
    "paired_lift",
    "paired_ratio",
    "per_user_metrics",
    "slice_metrics",
    "slice_rows",
    "target_ranks",
    "temporal_cutoff",
    "temporal_holdout",
    "write_report",
]
