"""replayrec __kind__ plugin ``__name__``."""

from __module__.stage import __Class__, __Class__Config

__all__ = ["__Class__", "__Class__Config"]
