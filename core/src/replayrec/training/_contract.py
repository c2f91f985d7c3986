"""What core hands a trainable plugin, and what the plugin hands back.

The plugin's ``replayrec.trainers`` entry point is a ``build(config, data) -> TrainingJob`` function; core's
runner (``replayrec train``) drives the job with Lightning, tracks it in MLflow and saves its artifact.
Nothing here imports torch or Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from replayrec.data import Catalog, Interactions
from replayrec.evaluation import EvalSet
from replayrec.registry import StageResolver
from replayrec.stages import Stage

__all__ = ["TrainData", "TrainingJob"]


@dataclass(frozen=True)
class TrainData:
    """Training input: the events to fit and the validation requests (for early stopping).

    ``resolver`` builds the upstream stages a later-stage plugin trains on (a ranker's recall), from specs
    such as ``{"type": "lightgcn", "model": "lightgcn@latest"}``, fitted on ``fit``.
    """

    dataset: str
    protocol: str
    catalog: Catalog
    fit: Interactions
    valid: EvalSet | None
    history_len: int | None
    seed: int
    resolver: StageResolver | None = None


@runtime_checkable
class TrainingJob(Protocol):
    """A plugin's training job: the Lightning pieces plus how to serve and save what it learned."""

    name: str
    #: the plugin's validated training config (a pydantic model); the runner reads these optional keys:
    #: ``epochs``, ``eval_every``, ``patience``, ``monitor`` (a metric name such as ``ndcg@20``) and
    #: ``lr_decay_on_plateau`` (learning-rate factor after a validation check without improvement)
    config: Any

    def lightning_module(self) -> Any:
        """The ``LightningModule`` to fit."""

    def train_dataloader(self) -> Any:
        """An iterable of training batches (re-iterated every epoch)."""

    def stage(self) -> Stage:
        """A serving-time stage over the module's *current* weights.

        The runner validates a :class:`~replayrec.stages.Recall` by exact full ranking. A job whose stage
        ranks candidate lists (rank, rerank) also defines ``validation_model() -> ListFn``: the candidate
        lists of the validation requests, ordered by its current weights. A job that trains on
        ``data.valid`` (a reranker learning from lists its upstream stages never saw) defines
        ``validation_set() -> EvalSet``, the held-out part the runner validates on instead."""

    def export(self, directory: Path) -> Mapping[str, Any]:
        """Write the weights (:func:`replayrec.artifacts.save_weights`: ``model.safetensors``) and any
        extra files (a rank / rerank model's ``upstream.json``) into ``directory``; return the serving
        config."""
