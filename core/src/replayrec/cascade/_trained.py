"""The cascade a trained rank / rerank model runs in, from the upstream stages it was trained behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replayrec.artifacts import read_upstream
from replayrec.cascade._config import CascadeConfig

__all__ = ["trained_cascade"]


def trained_cascade(plugin: str, kind: str, model: Path, options: dict[str, Any]) -> CascadeConfig:
    """The upstream stages ``model`` was trained on (its ``upstream.json``), the model itself with
    ``options`` on top, pass-through after it; every stage keeps its whole candidate list, so the list the
    model ranks is evaluated in full (a reranker reorders the rank stage's top ``rank_k``)."""
    up = read_upstream(model, kind)
    depth = int(up["recall_k"])
    layout: dict[str, Any] = {"recall": {"k": depth, "channels": [up["recall"]]}}
    if kind == "rank":
        spec: dict[str, Any] = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank=spec, rerank={"type": "passthrough", "k": depth})
    else:
        depth = int(up["rank_k"])
        spec = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank={**up["rank"], "k": depth}, rerank=spec)
    return CascadeConfig.from_mapping(layout, source=f"cascade of {model}")
