"""EASE recall plugin for replayrec (Steck, WWW 2019), with real-time fold-in of the request's history.

Importing the package imports nothing heavy: the serving stage is in ``stage`` (numpy / scipy), training
(Lightning + MLflow through core's runner) in ``train``."""

from replayrec_recall_ease.config import EaseConfig, EaseTrainConfig
from replayrec_recall_ease.model import EaseWeights
from replayrec_recall_ease.stage import EaseRecall

__all__ = ["EaseConfig", "EaseRecall", "EaseTrainConfig", "EaseWeights"]
