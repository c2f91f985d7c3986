"""Fit a plugin's training job for a few epochs with a plain Lightning trainer (no logger, no checkpoints)."""

from __future__ import annotations

from typing import Any

__all__ = ["quick_fit"]


def quick_fit(job: Any, epochs: int) -> Any:
    """Train ``job`` (a :class:`replayrec.training.TrainingJob`) in-process for ``epochs``; return it."""
    import lightning as L

    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(job.lightning_module(), train_dataloaders=job.train_dataloader())
    return job
