"""replayrec-serving: the FastAPI recommendation service (``create_app``), run by ``replayrec serve``.

``create_app`` and ``app_from_env`` are imported on first use (FastAPI costs a third of a second to import,
which the other ``replayrec`` commands should not pay)."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from replayrec_serving._experiment import Experiment, ExperimentArm, ExperimentStore, bucket
from replayrec_serving._service import RecommendationService
from replayrec_serving._settings import ServiceSettings, default_serving_cascade

try:
    __version__ = version("replayrec-serving")  # the one version source: serving/pyproject.toml
except PackageNotFoundError:  # a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "Experiment",
    "ExperimentArm",
    "ExperimentStore",
    "RecommendationService",
    "ServiceSettings",
    "__version__",
    "app_from_env",
    "bucket",
    "create_app",
    "default_serving_cascade",
]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "app_from_env"):
        from replayrec_serving import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'replayrec_serving' has no attribute {name!r}")
