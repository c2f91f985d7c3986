"""``build(config, data)``: the DIN training job driven by core's ``replayrec train``."""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader

from replayrec.artifacts import ARTIFACT_UPSTREAM, save_weights
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalSet, ListFn, build_requests, per_user_metrics
from replayrec.stages import Candidate, Recall, Request, StageContext
from replayrec.training import TrainData
from replayrec_rank_din.config import DINConfig, DINTrainConfig
from replayrec_rank_din.data import (
    Candidates,
    DINBatches,
    recall_candidates,
    target_requests,
    training_targets,
)
from replayrec_rank_din.model import DIN
from replayrec_rank_din.module import DINModule
from replayrec_rank_din.stage import DINRank, DINWeights, blend_with_order

__all__ = ["BLEND_GRID", "DINJob", "blend_curve", "build"]

#: the recall-order weights ``recall_blend: validate`` chooses from (0 = DIN alone, 1 = the recall's order)
BLEND_GRID = tuple(round(0.05 * i, 2) for i in range(21))

log = logging.getLogger(__name__)


def keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks of up to 32 MB instead of returning them to the OS.

    Every training step allocates and frees the same (batch × candidates × history × width) tensors; with the
    defaults each one is a fresh ``mmap`` whose pages the kernel must zero again (half the CPU time went to
    the kernel). Measured on books, 2 cores: 1,959 → 2,894 training examples per second."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 2**30)
    libc.mallopt(m_top_pad, 256 * 1024 * 1024)


class DINJob:
    name = "din"

    def __init__(self, config: DINTrainConfig, data: TrainData) -> None:
        self.config = config
        self.data = data
        keep_freed_memory()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        if data.resolver is None:
            raise ConfigError("din trains on a recall stage's candidates: TrainData.resolver is required")
        recall, self.recall_spec = data.resolver.build("recall", config.recall)
        if not isinstance(recall, Recall):
            raise ConfigError(f"din: {config.recall.get('type')!r} is not a recall stage")
        self.recall = recall
        fit = data.fit
        self.targets = training_targets(fit, config.max_history, config.min_history, config.max_targets)
        if len(self.targets) == 0:
            raise ConfigError("din: no training targets (no user has enough events)")
        started = time.perf_counter()
        cands = recall_candidates(
            recall, target_requests(self.targets, np.arange(len(self.targets))), config.recall_k
        )
        self.candidate_seconds = time.perf_counter() - started
        log.info(
            "din: %d training targets, recall candidates in %.1fs", len(self.targets), self.candidate_seconds
        )
        self.batches = DINBatches(
            self.targets,
            cands,
            fit.n_items,
            config.batch_size,
            config.hard_negatives,
            config.random_negatives,
            config.max_history,
            config.seed,
        )
        self.model = DIN(
            fit.n_items,
            torch.from_numpy(np.asarray(data.catalog.groups, dtype=np.int64)),
            config.item_dim,
            config.group_dim,
            config.attention_hidden,
            config.mlp_hidden,
            config.max_history,
            config.context_dim,
        )
        self.warm_start = self._warm_start(recall)
        self.module = DINModule(self.model, config, torch.from_numpy(fit.item_counts))
        self._valid_set = _sample(data.valid, config.valid_users, data.seed)
        self._valid: tuple[dict[tuple[int, int], int], list[Request], Candidates] | None = None
        self._blends: dict[str, float] = {}  # the weight chosen for each validated state (by fingerprint)

    def _warm_start(self, recall: Recall) -> bool:
        """Item id embeddings from the recall's item vectors (reduced to ``item_dim`` by PCA when wider)."""
        if self.config.init_item_embeddings != "recall":
            return False
        vecs = recall.item_vectors()
        if vecs is None:
            log.warning("din: %s has no item vectors; item embeddings start random", recall.name)
            return False
        init = fit_width(np.asarray(vecs, dtype=np.float32), self.config.item_dim)
        with torch.no_grad():
            self.model.encoder.item.weight[1:] = torch.from_numpy(init)
        return True

    def lightning_module(self) -> DINModule:
        return self.module

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.batches, batch_size=None)

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def stage(self) -> DINRank:
        """The serving stage over the current weights, with the blend validation chose for them (if any)."""
        return DINRank(self._serving(compute=False), self._context())

    def _serving(self, compute: bool) -> DINConfig:
        """The serving config of the current weights: the blend weight configured, or the one validation
        chose for exactly these weights (``compute``: validate now when none did; else DIN alone)."""
        blend = self.config.recall_blend
        if blend == "validate":
            if self._fingerprint() not in self._blends and compute and self._valid_set is not None:
                self.validation_model()
            blend = self._blends.get(self._fingerprint(), 0.0)
        return DINConfig(max_history=self.config.max_history, recall_blend=blend)

    def _fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for name, value in self.model.state_dict().items():
            digest.update(name.encode())
            digest.update(value.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def validation_set(self) -> EvalSet | None:
        """The validation requests the runner checks (``valid_users`` of them at most)."""
        return self._valid_set

    def _validation_candidates(self) -> tuple[dict[tuple[int, int], int], list[Request], Candidates]:
        if self._valid is None:
            ev = self._valid_set
            if ev is None:
                raise ConfigError("din: no validation requests")
            reqs = build_requests(ev, np.arange(len(ev), dtype=np.int64), self.data.history_len)
            index = {(r.user, r.timestamp): i for i, r in enumerate(reqs)}
            self._valid = (index, reqs, recall_candidates(self.recall, reqs, self.config.recall_k))
        return self._valid

    def validation_model(self) -> ListFn:
        """The recall's candidates for each validation request (computed once), ordered by DIN now, blended
        with the recall's order by the configured weight or (``validate``) the best one for these weights."""
        index, reqs, cands = self._validation_candidates()
        if self._valid_set is None:  # unreachable: _validation_candidates raised
            raise ConfigError("din: no validation requests")
        logits = DINRank(DINConfig(max_history=self.config.max_history), self._context()).logits(
            reqs, np.maximum(cands.items, 0)
        )
        if self.config.recall_blend != "validate":
            weight = float(self.config.recall_blend)
        else:
            curve = blend_curve(logits, cands, self._valid_set, self.config.monitor)
            weight = max(curve, key=lambda w: (curve[w], w))  # ties: the weight nearer the recall's order
            self._blends[self._fingerprint()] = weight
            log.info(
                "din: validation %s: DIN alone %.4f, recall order %.4f, recall_blend %.2f: %.4f",
                self.config.monitor,
                curve[0.0],
                curve[1.0],
                weight,
                curve[weight],
            )
        scores = blend_with_order(logits, cands.count, weight)

        def lists(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
            out: list[list[Candidate]] = []
            for r in requests:
                n = index[(r.user, r.timestamp)]
                c = int(cands.count[n])
                items, s = cands.items[n, :c], scores[n, :c]
                order = np.lexsort((items, -s))[:depth]
                out.append([Candidate(int(items[j]), float(s[j])) for j in order])
            return out

        return lists

    def _context(self) -> StageContext:
        state = {k: v.numpy() for k, v in self.weights().items()}
        return StageContext(
            catalog=self.data.catalog, seed=self.config.seed, extras={"weights": DINWeights(state)}
        )

    def export(self, directory: Path) -> Mapping[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(directory, self.weights())
        upstream = {"recall": self.recall_spec, "recall_k": self.config.recall_k}
        (directory / ARTIFACT_UPSTREAM).write_text(json.dumps(upstream, indent=2))
        return self._serving(compute=True).model_dump()


def _sample(ev: EvalSet | None, n: int | None, seed: int) -> EvalSet | None:
    if ev is None or n is None or len(ev) <= n:
        return ev
    rows = np.sort(np.random.default_rng(seed).choice(len(ev), n, replace=False))
    return ev.subset(rows.astype(np.int64))


def blend_curve(
    logits: npt.NDArray[np.float32], cands: Candidates, valid: EvalSet, monitor: str
) -> dict[float, float]:
    """``monitor`` (e.g. ``ndcg@10``, as the runner computes it) of the blended order for every weight of
    ``BLEND_GRID``: row ``n`` of ``logits`` / ``cands`` answers validation request ``n``; a target outside
    the candidates counts as missed."""
    pair_row = np.repeat(np.arange(len(valid)), np.diff(valid.tgt_ptr))
    target = valid.tgt_items.astype(np.int64)
    width = cands.items.shape[1]
    listed = np.arange(width)[None, :] < cands.count[pair_row][:, None]
    items = cands.items[pair_row].astype(np.int64)
    match = (items == target[:, None]) & listed
    found = match.any(axis=1)
    pos = match.argmax(axis=1)
    ks = (int(monitor.split("@")[1]),) if "@" in monitor else (10,)
    key = "auc" if monitor == "gauc" else monitor
    curve: dict[float, float] = {}
    for weight in BLEND_GRID:
        s = blend_with_order(logits, cands.count, weight)[pair_row]
        own = s[np.arange(s.shape[0]), pos][:, None]
        above = listed & ((s > own) | ((s == own) & (items < target[:, None])))
        ranks = np.where(found, above.sum(axis=1), np.inf).astype(np.float64)
        per_user = per_user_metrics(pair_row, ranks, len(valid), cands.count, ks)
        if key not in per_user:
            raise ConfigError(f"din: recall_blend 'validate' cannot compute the monitor {monitor!r}")
        curve[weight] = float(np.nanmean(per_user[key]))
    return curve


def fit_width(vecs: npt.NDArray[np.float32], dim: int) -> npt.NDArray[np.float32]:
    """``vecs`` (n, d) as (n, dim): the top ``dim`` principal directions when wider, zero-padded when
    narrower (dot products are kept as far as ``dim`` allows)."""
    if vecs.shape[1] == dim:
        return vecs
    if vecs.shape[1] < dim:
        return np.pad(vecs, ((0, 0), (0, dim - vecs.shape[1])))
    _, _, vt = np.linalg.svd(vecs - vecs.mean(0), full_matrices=False)
    out: npt.NDArray[np.float32] = (vecs @ vt[:dim].T).astype(np.float32)
    return out


def build(config: Mapping[str, Any], data: TrainData) -> DINJob:
    """The ``replayrec.trainers`` entry point."""
    return DINJob(DINTrainConfig.model_validate(dict(config)), data)
