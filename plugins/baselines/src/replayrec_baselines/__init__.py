"""Baseline recall plugins for replayrec: ``popularity`` and ``itemcf``."""

from replayrec_baselines.itemcf import ItemCF, ItemCFConfig
from replayrec_baselines.popularity import Popularity, PopularityConfig

__all__ = ["ItemCF", "ItemCFConfig", "Popularity", "PopularityConfig"]
