"""Plugin discovery (entry points), validation and construction."""

from replayrec.plugins._loader import (
    KINDS,
    PluginInfo,
    available,
    build_stage,
    check_stage_class,
    kind_of,
    list_plugins,
    load_stage_class,
    load_trainer,
    parse_config,
)

__all__ = [
    "KINDS",
    "PluginInfo",
    "available",
    "build_stage",
    "check_stage_class",
    "kind_of",
    "list_plugins",
    "load_stage_class",
    "load_trainer",
    "parse_config",
]
