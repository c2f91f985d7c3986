"""Gate thresholds (typed, closed config) and the decision every step returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from replayrec.errors import ConfigError, describe_validation_error

__all__ = [
    "CanaryGate",
    "Check",
    "Decision",
    "EvaluateGate",
    "GateConfig",
    "OptimizeGate",
    "StageGate",
    "load_gates",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluateGate(_Closed):
    """Offline evaluation on the protocol's test split, candidate and ``prod`` on the same users."""

    metrics: tuple[str, ...] = ("ndcg@10", "hr@10")
    #: absolute floors on the whole test set
    minimum: dict[str, float] = Field(default_factory=lambda: {"ndcg@10": 0.005, "hr@10": 0.01})
    #: a baseline recall plugin the candidate must not fall below (paired, with CI): a name
    #: (``popularity``) or the plugin with its options (``{type: popularity, mode: recent}``)
    baseline: str | dict[str, Any] | None = None
    #: a rank / rerank candidate is also compared with the order it receives (its upstream stages, as it was
    #: trained behind them): a ranker that makes its input worse is refused, i.e. when the 95% interval of
    #: its paired lift over that order lies entirely below ``-input_tolerance``
    input_order: bool = True
    input_tolerance: float = Field(0.0, ge=0, lt=1)
    #: relative regression against prod / the baseline that fails the gate when the 95% interval of the
    #: paired lift lies entirely below ``-tolerance`` (all users) or ``-slice_tolerance`` (each slice)
    tolerance: float = Field(0.02, ge=0, lt=1)
    slice_tolerance: float = Field(0.05, ge=0, lt=1)
    #: users with at most this many history events form the ``cold`` slice ...
    cold_max_history: int = Field(5, ge=0)
    #: ... and those at or above this quantile of history length the ``heavy`` slice
    heavy_quantile: float = Field(0.9, gt=0, lt=1)
    n_boot: int = Field(500, ge=50)

    @field_validator("baseline")
    @classmethod
    def _baseline_names_a_plugin(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(v, dict) and not (isinstance(v.get("type"), str) and v["type"]):
            raise ValueError("a baseline given with options needs `type: <recall plugin>`")
        return v

    def baseline_spec(self) -> tuple[str, dict[str, Any]] | None:
        """The baseline as (plugin, its options), or ``None``."""
        if self.baseline is None:
            return None
        if isinstance(self.baseline, str):
            return self.baseline, {}
        return str(self.baseline["type"]), {k: v for k, v in self.baseline.items() if k != "type"}


class OptimizeGate(_Closed):
    """The optional step between *evaluate* and *stage*: the candidate turned into a serving variant
    (``replayrec optimize``), which must lose no more than ``max_loss`` against the version it was made
    from, on the same users: the 95% interval of the paired relative lift must lie at or above
    ``-max_loss`` for every metric (the variant has to show its loss is small, not merely unproven)."""

    #: the variant to make (``None``: no optimize step, unless ``pipeline run --optimize`` names one)
    method: Literal["fp16", "int8", "onnx"] | None = None
    #: ``int8``: the weight grid (8 = plain INT8)
    bits: int = Field(8, ge=2, le=8)
    metrics: tuple[str, ...] = ("ndcg@10",)
    max_loss: float = Field(0.01, ge=0, lt=1)
    n_boot: int = Field(1000, ge=50)


class StageGate(_Closed):
    """The candidate loads through the serving contract, passes the contract suite, meets a latency budget."""

    contract_requests: int = Field(12, ge=2)
    latency_requests: int = Field(300, ge=20)
    candidates: int = Field(200, ge=1, description="list length a rank / rerank stage is timed with")
    p99_budget_ms: float = Field(10.0, gt=0)


class CanaryGate(_Closed):
    """The candidate against prod on a slice of users: replayed held-out traffic split by user hash between
    the two cascades (``source: simulate``), or the running service's live per-arm numbers (``live``)."""

    fraction: float = Field(0.1, gt=0, lt=1)
    salt: str = "replayrec-canary"
    max_requests: int = Field(20_000, ge=10, description="the newest held-out requests, in time order")
    k: int = Field(10, ge=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    #: canary p99 latency may be at most ``latency_factor`` × prod's + ``latency_slack_ms`` (and at most the
    #: budget): the slack absorbs the colder caches of the minority arm when both share one process ...
    latency_factor: float = Field(2.0, ge=1)
    latency_slack_ms: float = Field(2.0, ge=0)
    p99_budget_ms: float = Field(50.0, gt=0)
    #: ... and its error rate at most this
    max_error_rate: float = Field(0.001, ge=0, lt=1)
    #: ``simulate`` replays held-out requests in-process (offline runs); ``live`` sets the alias, then reads
    #: the service's counters from ``GET {service_url}/v1/arms`` and judges them with the same thresholds
    source: Literal["simulate", "live"] = "simulate"
    service_url: str | None = Field(None, validate_default=True)
    #: live: how long to wait for the service to serve the canary version, and again for ``min_requests``
    #: new canary requests (fewer fail the gate); ``poll_s`` between two reads
    observe_s: float = Field(60.0, gt=0)
    min_requests: int = Field(200, ge=1)
    poll_s: float = Field(2.0, gt=0)

    @field_validator("service_url")
    @classmethod
    def _live_needs_an_http_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is None:
            if info.data.get("source") == "live":
                raise ValueError("source: live needs the service's URL (http://host:port)")
            return None
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url.rstrip("/")


class GateConfig(_Closed):
    evaluate: EvaluateGate = EvaluateGate()
    optimize: OptimizeGate = OptimizeGate()
    stage: StageGate = StageGate()
    canary: CanaryGate = CanaryGate()


def load_gates(path: Path | None) -> GateConfig:
    """Gate thresholds from a YAML file (sections ``evaluate``, ``optimize``, ``stage``, ``canary``), or the
    defaults."""
    if path is None:
        return GateConfig()
    if not path.is_file():
        raise ConfigError(f"gate config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return GateConfig.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"gate config {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise ConfigError(f"invalid gate config {path}: {problems}") from None


@dataclass(frozen=True)
class Check:
    """One comparison inside a gate, with the numbers it was decided on."""

    name: str
    passed: bool
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "numbers": self.numbers}


@dataclass(frozen=True)
class Decision:
    """A step's outcome: passed or not, why, and every check behind it."""

    step: str
    plugin: str
    version: str
    passed: bool
    reason: str
    checks: tuple[Check, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checks(
        cls, step: str, plugin: str, version: str, checks: list[Check], numbers: dict[str, Any] | None = None
    ) -> Decision:
        failed = [c for c in checks if not c.passed]
        reason = (
            "; ".join(f"{c.name}: {c.detail}" for c in failed)
            if failed
            else f"all {len(checks)} checks passed"
        )
        return cls(step, plugin, version, not failed, reason, tuple(checks), numbers or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "plugin": self.plugin,
            "version": self.version,
            "passed": self.passed,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "numbers": self.numbers,
        }
