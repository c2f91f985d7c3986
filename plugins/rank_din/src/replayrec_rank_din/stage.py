"""Serving-time DIN ranking in numpy: the trained network's forward pass, batched over candidates.

Reads the request's freshest ``max_history`` events (so a profile updated in real time changes the ranking at
once). No Lightning, no torch at scoring time: the weights are read from ``model.safetensors`` with numpy.
With ``recall_blend`` > 0 the score mixes DIN's logit with the order the candidates arrive in (the recall's):
:func:`blend_with_order`. An optimised artifact (``replayrec optimize din``) with ``model.onnx`` runs the same
network through ONNX Runtime (:class:`DINGraph`, FP32 or INT8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from replayrec.artifacts import OnnxGraph, has_graph, load_weights, optimization_of
from replayrec.errors import ConfigError, StageInputError
from replayrec.stages import Candidate, Rank, Request, StageConfig, StageContext
from replayrec_rank_din.config import DINConfig
from replayrec_rank_din.features import history_block

__all__ = ["DINGraph", "DINRank", "DINWeights", "blend_with_order", "load_state"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
#: floats in one chunk's pair tensor (requests × candidates × history × width): requests of similar history
#: length are scored together up to this size, so the intermediates stay in the cache and every array is
#: below glibc's mmap threshold (a fresh mmap is zeroed by the kernel on every call)
_CHUNK_FLOATS = 2_000_000


def load_state(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The artifact's weights as numpy arrays, without executing pickled code."""
    return load_weights(path, "din")


def _zscore(x: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    n = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = np.where(valid, x, 0.0).sum(axis=1, keepdims=True) / n
    dev = np.where(valid, x - mean, 0.0)
    std = np.sqrt((dev**2).sum(axis=1, keepdims=True) / n)
    out: npt.NDArray[np.float64] = np.divide(dev, std, out=np.zeros_like(dev), where=std > 0)
    return out


def blend_with_order(logits: npt.NDArray[Any], count: I64, weight: float) -> npt.NDArray[np.float64]:
    """Scores of candidate lists that arrive best first: row ``r``'s first ``count[r]`` entries of ``logits``
    (R, C) (the rest is padding, returned as 0).

    ``(1 − weight) · z(logit) + weight · z(−log(1 + position))``, each z-scored within its row's list: the
    recall's order is a prior that DIN's logits refine. ``weight`` 0 returns the logits themselves (DIN
    alone), 1 the incoming order exactly (the position prior is strictly decreasing). Only positions are read,
    so the recall's score scale (one channel or several merged) does not matter."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the blend weight must lie in [0, 1], got {weight}")
    x = np.asarray(logits, dtype=np.float64)
    valid = np.arange(x.shape[1])[None, :] < np.asarray(count)[:, None]
    if weight == 0.0:
        return np.where(valid, x, 0.0)
    prior = np.broadcast_to(-np.log1p(np.arange(x.shape[1], dtype=np.float64)), x.shape)
    out: npt.NDArray[np.float64] = weight * _zscore(prior, valid)
    if weight < 1.0:
        out += (1.0 - weight) * _zscore(x, valid)
    return out


@dataclass(frozen=True)
class _Dice:
    """Dice at inference, ``x · (α + (1 − α) · sigmoid((x − mean) / std))``, written as
    ``x · (c0 + c1 · tanh(a · x + b))`` (sigmoid(u) = (1 + tanh(u/2)) / 2; numpy's float32 tanh is ~10× faster
    than scipy's expit) and evaluated in place."""

    a: F32
    b: F32
    c0: F32
    c1: F32

    @classmethod
    def from_stats(cls, alpha: F32, mean: F32, inv_std: F32) -> _Dice:
        half = np.float32(0.5)
        return cls(half * inv_std, -half * mean * inv_std, half * (1 + alpha), half * (1 - alpha))

    def __call__(self, x: F32) -> F32:
        z = np.multiply(x, self.a)
        z += self.b
        np.tanh(z, out=z)
        z *= self.c1
        z += self.c0
        z *= x
        return z


@dataclass(frozen=True)
class _Dense:
    w_t: F32  # (in, out)
    b: F32

    def __call__(self, x: F32) -> F32:
        # one 2-D GEMM (a stacked matmul over the leading axes is many times slower)
        out: F32 = (x.reshape(-1, x.shape[-1]) @ self.w_t).reshape(*x.shape[:-1], -1) + self.b
        return out


class DINWeights:
    """The network's tensors, read by name from a ``DIN.state_dict()``; shapes define the architecture."""

    def __init__(self, state: Mapping[str, npt.NDArray[Any]], eps: float = 1e-6) -> None:
        def f(name: str) -> F32:
            if name not in state:
                raise ConfigError(f"din: the model lacks tensor {name!r}")
            return np.ascontiguousarray(state[name], dtype=np.float32)

        def dice(prefix: str) -> _Dice:
            var = f(f"{prefix}.running_var")
            inv_std = (1.0 / np.sqrt(var + eps)).astype(np.float32)
            return _Dice.from_stats(f(f"{prefix}.alpha"), f(f"{prefix}.running_mean"), inv_std)

        def dense(prefix: str) -> _Dense:
            return _Dense(np.ascontiguousarray(f(f"{prefix}.weight").T), f(f"{prefix}.bias"))

        def layers(prefix: str) -> list[tuple[_Dense, _Dice]]:
            out, i = [], 0
            while f"{prefix}.linears.{i}.weight" in state:
                out.append((dense(f"{prefix}.linears.{i}"), dice(f"{prefix}.dices.{i}")))
                i += 1
            return out

        self.item = f("encoder.item.weight")
        self.group = f("encoder.group.weight")
        self.item_group = np.asarray(state["encoder.item_group"], dtype=np.int64)
        self.time = f("time.weight")
        self.position = f("position.weight")
        self.ctx_length = f("ctx_length.weight")
        self.ctx_gap = f("ctx_gap.weight")
        d = self.item.shape[1] + self.group.shape[1]
        w1, self.b1 = f("attention.first.weight"), f("attention.first.bias")
        self.w_hist = np.ascontiguousarray((w1[:, :d] + w1[:, 2 * d : 3 * d]).T)
        self.w_cand = np.ascontiguousarray((w1[:, d : 2 * d] - w1[:, 2 * d : 3 * d]).T)
        self.w_pair = np.ascontiguousarray(w1[:, 3 * d :].T)  # (D, H)
        self.first_dice = dice("attention.first_dice")
        self.att_layers = layers("attention")
        self.att_out = dense("attention.out")
        self.mlp_layers = layers("mlp")
        self.mlp_out = dense("mlp.out")
        self.n_items = self.item.shape[0] - 1
        self.max_history = self.position.shape[0]
        self.dim = self.item.shape[1] + self.group.shape[1]

    def encode(self, items: I64) -> F32:
        """(…) dense ids + 1 → (…, D)."""
        out: F32 = np.concatenate([self.item[items], self.group[self.item_group[items]]], axis=-1)
        return out

    def forward(self, block: Mapping[str, I64], cand_items: I64) -> tuple[F32, F32]:
        """``model.DIN.forward`` in eval mode: (logits (B, C), attention weights (B, C, L))."""
        h_items = block["hist_items"]
        mask = (h_items > 0).astype(np.float32)
        hist = (
            self.encode(h_items)
            + (self.time[block["hist_time"]] + self.position[block["hist_pos"]]) * mask[..., None]
        )
        cand = self.encode(cand_items + 1)
        shape = (cand.shape[0], cand.shape[1], hist.shape[1], -1)
        pair = (cand[:, :, None, :] * hist[:, None, :, :]).reshape(-1, hist.shape[2])
        x = (pair @ self.w_pair).reshape(shape)  # (B, C, L, H)
        x += (hist @ self.w_hist)[:, None, :, :]
        x += (cand @ self.w_cand + self.b1)[:, :, None, :]
        x = self.first_dice(x)
        for dense, dice in self.att_layers:
            x = dice(dense(x))
        att = self.att_out(x)[..., 0] * mask[:, None, :]  # (B, C, L)
        interest = att @ hist  # (B, C, D)
        ctx = np.concatenate(
            [self.ctx_length[block["context"][:, 0]], self.ctx_gap[block["context"][:, 1]]], -1
        )
        ctx = np.broadcast_to(ctx[:, None, :], (*cand.shape[:2], ctx.shape[-1]))
        z = np.concatenate([interest, cand, interest * cand, ctx], axis=-1)
        for dense, dice in self.mlp_layers:
            z = dice(dense(z))
        return self.mlp_out(z)[..., 0], att


class DINGraph:
    """The network as an ONNX graph (an optimised artifact), with :class:`DINWeights`' interface:
    ``forward(block, cand_items) → (logits, attention)`` and the sizes the ranker checks."""

    def __init__(self, artifact: Path) -> None:
        sizes = optimization_of(artifact).get("model", {})
        try:
            self.n_items, self.max_history, self.dim = (
                int(sizes[k]) for k in ("n_items", "max_history", "dim")
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"din: {artifact} holds an ONNX graph but its meta.json does not record the model's "
                "n_items, max_history and dim (optimization.model)"
            ) from None
        self.graph = OnnxGraph(artifact, "din")

    def forward(self, block: Mapping[str, I64], cand_items: I64) -> tuple[F32, F32]:
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in block.items()}
        logits, att = self.graph.run({**feeds, "cand_items": np.asarray(cand_items, dtype=np.int64)})
        return logits.astype(np.float32), att.astype(np.float32)


class DINRank(Rank):
    name: ClassVar[str] = "din"
    Config: ClassVar[type[StageConfig]] = DINConfig
    core_api: ClassVar[str] = "1.0"

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = DINConfig.model_validate(config.model_dump())
        weights = context.extras.get("weights")
        if weights is None:
            if context.artifact is None:
                raise ConfigError("din needs a trained model: pass --model <artifact> (replayrec train din)")
            path = context.artifact
            weights = DINGraph(path) if has_graph(path) else DINWeights(load_state(path))
        self.w: DINWeights | DINGraph = weights
        if self.w.n_items != context.n_items:
            raise ConfigError(
                f"din: the model has {self.w.n_items} items, the catalogue {context.n_items}; "
                "was it trained on another dataset?"
            )
        self.max_history = min(self.cfg.max_history, self.w.max_history)

    def _block(self, requests: Sequence[Request]) -> dict[str, I64]:
        """The requests' history blocks: the newest ``max_history`` events of each (``history_block``)."""
        lens = np.array([r.history.size for r in requests], dtype=np.int64)
        end = np.cumsum(lens)
        return history_block(
            np.concatenate([r.history for r in requests]) if requests else np.zeros(0, np.int64),
            np.concatenate([r.history_times for r in requests]) if requests else np.zeros(0, np.int64),
            end - lens,
            end,
            np.array([r.timestamp for r in requests], dtype=np.int64),
            self.max_history,
        )

    def score(self, request: Request, candidates: Sequence[Candidate]) -> list[Candidate]:
        return self.score_batch([request], [candidates])[0]

    def score_batch(
        self, requests: Sequence[Request], candidates: Sequence[Sequence[Candidate]]
    ) -> list[list[Candidate]]:
        """Requests in chunks of similar history length (``_CHUNK_FLOATS``); answers in the given order."""
        if len(requests) != len(candidates):
            raise StageInputError(f"din: {len(requests)} requests but {len(candidates)} candidate lists")
        for r, cands in zip(requests, candidates, strict=True):
            self.check_request(r)
            self.check_candidates(cands)
        out: list[list[Candidate]] = [[] for _ in requests]
        widths = np.array([len(c) for c in candidates], dtype=np.int64)
        for rows in self._chunks(requests, widths):
            reqs = [requests[i] for i in rows]
            items = np.zeros((rows.size, max(int(widths[rows].max()), 1)), dtype=np.int64)
            for j, i in enumerate(rows):
                items[j, : widths[i]] = [c.item for c in candidates[i]]
            block = self._block(reqs)
            logits, att = self.w.forward(block, items)
            scores = blend_with_order(logits, widths[rows], self.cfg.recall_blend)
            for j, i in enumerate(rows):
                n = int(widths[i])
                out[i] = self._ranked(list(candidates[i]), scores[j, :n], att[j, :n], block["hist_items"][j])
        return out

    def logits(self, requests: Sequence[Request], items: I64) -> F32:
        """DIN's raw logits (R, C) for the candidate item ids ``items`` (R, C) of each request (no blend;
        fill any padding with a valid id and ignore its logits)."""
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 2 or items.shape[0] != len(requests):
            raise StageInputError(f"din: items must be ({len(requests)}, C), got {items.shape}")
        if items.size and (items.min() < 0 or items.max() >= self.w.n_items):
            raise StageInputError(f"din: candidate ids must lie in [0, {self.w.n_items})")
        out = np.zeros(items.shape, dtype=np.float32)
        if items.size == 0:
            return out
        for rows in self._chunks(requests, np.full(len(requests), items.shape[1], dtype=np.int64)):
            out[rows] = self.w.forward(self._block([requests[i] for i in rows]), items[rows])[0]
        return out

    def _chunks(self, requests: Sequence[Request], widths: I64) -> list[I64]:
        """Row indices grouped by history length (shortest first; little padding), each group's pair tensor
        within ``_CHUNK_FLOATS``; rows without candidates are left out."""
        lens = np.array([min(r.history.size, self.max_history) for r in requests], dtype=np.int64)
        dim = self.w.dim
        chunks: list[I64] = []
        group: list[int] = []
        widest = 0
        for i in np.argsort(lens, kind="stable").tolist():
            if widths[i] == 0:
                continue
            wider = max(widest, int(widths[i]))
            if group and (len(group) + 1) * wider * max(int(lens[i]), 1) * dim > _CHUNK_FLOATS:
                chunks.append(np.array(group, dtype=np.int64))
                group, wider = [], int(widths[i])
            group.append(i)
            widest = wider
        if group:
            chunks.append(np.array(group, dtype=np.int64))
        return chunks

    def _ranked(
        self, cands: list[Candidate], scores: npt.NDArray[Any], att: F32, hist_items: I64
    ) -> list[Candidate]:
        if not cands:
            return []
        items = np.array([c.item for c in cands], dtype=np.int64)
        order = np.lexsort((items, -np.asarray(scores, dtype=np.float64)))
        masked = np.where(hist_items[None, :] > 0, att, -np.inf)
        top_hist = hist_items[np.argmax(masked, axis=1)] - 1
        out = []
        for j in order:
            reason = None
            if self.cfg.explain and top_hist[j] >= 0:
                reason = f"because you read {self.context.catalog.title(int(top_hist[j]))}"
            out.append(cands[j].with_score(self.name, float(scores[j]), reason))
        return out
