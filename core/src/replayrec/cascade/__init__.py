"""Cascade configuration and execution (multi-channel recall → rank → rerank)."""

from replayrec.cascade._cascade import Cascade, MergedRecall, build_from_spec, merge_channels
from replayrec.cascade._config import (
    CascadeConfig,
    ChannelSpec,
    RecallSpec,
    StageSpec,
    default_cascade_path,
    load_cascade,
    read_cascade_layout,
)
from replayrec.cascade._trained import input_cascade, ranker_recall, recall_layout, trained_cascade

__all__ = [
    "Cascade",
    "CascadeConfig",
    "ChannelSpec",
    "MergedRecall",
    "RecallSpec",
    "StageSpec",
    "build_from_spec",
    "default_cascade_path",
    "input_cascade",
    "load_cascade",
    "merge_channels",
    "ranker_recall",
    "read_cascade_layout",
    "recall_layout",
    "trained_cascade",
]
