"""Process settings (directories, seeds). Built where needed (CLI, app factory), never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir"]


def default_data_dir() -> Path:
    """``../shared/data`` relative to the working directory, the layout developers and CI have."""
    return (Path.cwd().parent / "shared" / "data").resolve()


class Settings(BaseSettings):
    """Settings read from ``REPLAYREC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="REPLAYREC_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="where the public data files live")
    state_dir: Path = Field(
        default_factory=lambda: Path.cwd() / ".replayrec",
        description="prepared datasets, reports, model artifacts",
    )
    seed: int = 20261126

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"
