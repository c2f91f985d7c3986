"""The cascade a trained rank / rerank model runs in, from the upstream stages it was trained behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replayrec.artifacts import read_upstream
from replayrec.cascade._config import CascadeConfig

__all__ = ["input_cascade", "ranker_recall", "recall_layout", "trained_cascade"]


def ranker_recall() -> dict[str, Any]:
    """The recall a rank / rerank model is trained behind by default: three channels merged by quota —
    LightGCN's best 120, item-to-item CF's 60, recent popularity's 20 (the one configuration measured on every
    catalogue, ``docs/quality.md``; the serving cascade's recall has the same channels at ``@prod``). A fresh
    copy each call."""
    return {
        "merge": "quota",
        "channels": [
            {"type": "lightgcn", "model": "lightgcn@latest", "quota": 120},
            {"type": "itemcf", "quota": 60},
            {"type": "popularity", "mode": "recent", "quota": 20},
        ],
    }


def recall_layout(spec: dict[str, Any], depth: int) -> dict[str, Any]:
    """The cascade's ``recall`` section for an upstream recall spec: one stage (``{type, model, …}``) or
    several channels (``{merge, channels: [...]}``), ``depth`` candidates."""
    if "channels" in spec:
        return {"k": depth, "merge": spec.get("merge", "quota"), "channels": list(spec["channels"])}
    return {"k": depth, "channels": [spec]}


def trained_cascade(plugin: str, kind: str, model: Path, options: dict[str, Any]) -> CascadeConfig:
    """The upstream stages ``model`` was trained on (its ``upstream.json``), the model itself with
    ``options`` on top, pass-through after it; every stage keeps its whole candidate list, so the list the
    model ranks is evaluated in full (a reranker reorders the rank stage's top ``rank_k``)."""
    up = read_upstream(model, kind)
    depth = int(up["recall_k"])
    layout: dict[str, Any] = {"recall": recall_layout(up["recall"], depth)}
    if kind == "rank":
        spec: dict[str, Any] = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank=spec, rerank={"type": "passthrough", "k": depth})
    else:
        depth = int(up["rank_k"])
        spec = {"type": plugin, "model": str(model), "k": depth, **options}
        layout.update(rank={**up["rank"], "k": depth}, rerank=spec)
    return CascadeConfig.from_mapping(layout, source=f"cascade of {model}")


def input_cascade(kind: str, model: Path) -> CascadeConfig:
    """The order ``model`` receives: its upstream stages as it was trained behind them, with the model's own
    stage (and everything after it) passing its input through, at the same depth as
    :func:`trained_cascade`. What a rank / rerank model must improve on."""
    up = read_upstream(model, kind)
    depth = int(up["recall_k"])
    layout: dict[str, Any] = {"recall": recall_layout(up["recall"], depth)}
    if kind == "rank":
        layout.update(rank={"type": "passthrough", "k": depth}, rerank={"type": "passthrough", "k": depth})
    else:
        depth = int(up["rank_k"])
        layout.update(rank={**up["rank"], "k": depth}, rerank={"type": "passthrough", "k": depth})
    return CascadeConfig.from_mapping(layout, source=f"input order of {model}")
