"""Exception hierarchy. Every error a user can cause derives from :class:`ReplayrecError`; the CLI prints
its message on one line and exits non-zero."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = [
    "ConfigError",
    "ContractViolation",
    "DataError",
    "PluginError",
    "ReplayrecError",
    "StageInputError",
    "UnknownUserError",
    "describe_validation_error",
]


class ReplayrecError(Exception):
    """Base class for errors with a message meant for the user."""


class DataError(ReplayrecError):
    """A data file or directory is missing, corrupt or malformed."""


class ConfigError(ReplayrecError):
    """A configuration value is invalid (unknown key, wrong type, impossible value)."""


class PluginError(ReplayrecError):
    """A plugin is missing, broken, or incompatible with this core."""


class ContractViolation(PluginError):  # noqa: N818 - a violation, not an error of the caller
    """A stage broke its kind's contract (see :mod:`replayrec.conformance`).

    Attributes:
        check: the violated check, with its parameters (e.g. ``recall.length_sorted_unique[k=10]``).
        numbers: the values the violation was decided on (request user, k, positions, scores, items).

    The message is prefixed with the check name: ``"<check>: <what went wrong>"``.
    """

    def __init__(self, check: str, message: str, numbers: dict[str, Any] | None = None) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message
        self.numbers: dict[str, Any] = dict(numbers or {})

    def __reduce__(self) -> tuple[type[ContractViolation], tuple[str, str, dict[str, Any]]]:
        return type(self), (self.check, self.message, self.numbers)  # picklable despite the custom __init__


class StageInputError(ReplayrecError, ValueError):
    """A stage was called with invalid input (bad k, unknown item ids, malformed request)."""


class UnknownUserError(ReplayrecError, KeyError):
    """A user id is not present in the dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown user"


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic ``ValidationError`` as one line: ``loc: message; …`` (an extra key reads "unknown key")."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{loc}: {msg}")
    return "; ".join(problems)
