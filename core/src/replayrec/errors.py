"""Exception hierarchy. Every error a user can cause derives from :class:`ReplayrecError`; the CLI prints
its message on one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "PluginError",
    "ReplayrecError",
    "StageInputError",
    "UnknownUserError",
]


class ReplayrecError(Exception):
    """Base class for errors with a message meant for the user."""


class DataError(ReplayrecError):
    """A data file or directory is missing, corrupt or malformed."""


class ConfigError(ReplayrecError):
    """A configuration value is invalid (unknown key, wrong type, impossible value)."""


class PluginError(ReplayrecError):
    """A plugin is missing, broken, or incompatible with this core."""


class StageInputError(ReplayrecError, ValueError):
    """A stage was called with invalid input (bad k, unknown item ids, malformed request)."""


class UnknownUserError(ReplayrecError, KeyError):
    """A user id is not present in the dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown user"
