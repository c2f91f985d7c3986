"""Serving-time EASE recall: a request's scores are its history's weighted sum of rows of the pruned ``B``.

The history is the request's own, so an event that was never in the training data changes the recall at
once (fold-in). Every item also gets a tiny popularity prior (1e-3 of B's smallest positive entry, scaled
by the item's training count): items without an EASE score (outside the fitted ones, or no overlap with
the history) are ordered by popularity, and an empty history is popularity. No training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replayrec.artifacts import load_weights
from replayrec.errors import ConfigError
from replayrec.stages import (
    Candidate,
    FloatArray,
    Recall,
    Request,
    StageConfig,
    StageContext,
    topk_candidates,
)
from replayrec_recall_ease.config import EaseConfig
from replayrec_recall_ease.model import EaseWeights

__all__ = ["EaseRecall", "read_weights"]

#: requests scored together: their (64, I) float64 scores stay below glibc's mmap threshold (books: 20 MB)
_BATCH = 64


def read_weights(path: Path) -> EaseWeights:
    """The weights of an artifact directory (or a ``.safetensors`` file), read without pickled code and
    checked (a truncated or foreign file is a :class:`~replayrec.errors.ConfigError`)."""
    return EaseWeights.from_state(load_weights(path, "ease"), "ease")


class EaseRecall(Recall):
    name: ClassVar[str] = "ease"
    Config: ClassVar[type[StageConfig]] = EaseConfig
    core_api: ClassVar[str] = "1.0"
    supports_full_ranking: ClassVar[bool] = True

    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.cfg = EaseConfig.model_validate(config.model_dump())
        weights = context.extras.get("weights")
        if weights is None:
            if context.artifact is None:
                raise ConfigError(
                    "ease needs a trained model: pass --model <artifact> (replayrec train ease)"
                )
            weights = read_weights(context.artifact)
        if not isinstance(weights, EaseWeights):
            raise ConfigError(f"ease: extras['weights'] must be EaseWeights, got {type(weights).__name__}")
        if weights.n_items != context.n_items:
            raise ConfigError(
                f"ease: the model has {weights.n_items} items, the catalogue {context.n_items}; "
                "was it trained on another dataset?"
            )
        self.weights = weights
        self._b: sp.csr_matrix = weights.matrix()
        positive = weights.data[weights.data > 0]
        smallest = float(positive.min()) if positive.size else 1.0
        counts = weights.item_counts.astype(np.float64)
        self._prior: npt.NDArray[np.float64] = (
            counts / max(float(counts.max(initial=0.0)), 1.0) * smallest * 1e-3
        )

    def _history_matrix(self, requests: Sequence[Request]) -> sp.csr_matrix:
        """(len(requests), n_items): each distinct history item weighted by its newest occurrence."""
        rows, cols, vals = [], [], []
        for i, r in enumerate(requests):
            self.check_request(r)
            h = r.history
            if h.size == 0:
                continue
            newest_first = h[::-1]
            items, first = np.unique(newest_first, return_index=True)
            rows.append(np.full(items.size, i, dtype=np.int64))
            cols.append(items)
            vals.append(np.exp(-self.cfg.recency_decay * first.astype(np.float64)))
        if not rows:
            return sp.csr_matrix((len(requests), self.n_items), dtype=np.float64)
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(requests), self.n_items),
        )

    def score_all(self, requests: Sequence[Request]) -> FloatArray:
        """``x_u · B`` plus the popularity prior, (len(requests), n_items) float64."""
        h = self._history_matrix(requests)
        scores = (h @ self._b).toarray()
        scores += self._prior
        out: FloatArray = scores
        return out

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        return self.retrieve_batch([request], k)[0]

    def retrieve_batch(self, requests: Sequence[Request], k: int) -> list[list[Candidate]]:
        """One sparse product per chunk of ``_BATCH`` requests; a request's row depends on its own history
        only, so its candidates are the same alone or batched."""
        self.check_k(k)
        for r in requests:
            self.check_request(r)
        out: list[list[Candidate]] = []
        for lo in range(0, len(requests), _BATCH):
            chunk = requests[lo : lo + _BATCH]
            scores = self.score_all(chunk)
            out.extend(
                topk_candidates(s, k, r.exclude, self.name) for s, r in zip(scores, chunk, strict=True)
            )
        return out
