"""Typed, closed configuration of ``__name__``."""

from pydantic import Field

from replayrec.stages import StageConfig


class __Class__Config(StageConfig):
    temperature: float = Field(default=1.0, gt=0, description="example option: scales the scores")
