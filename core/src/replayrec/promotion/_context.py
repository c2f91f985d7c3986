"""What every promotion step is given: the plugin, its dataset, the registry, the gates, the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from replayrec.application import open_dataset
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import ProtocolSplit, build_split
from replayrec.plugins import kind_of
from replayrec.promotion._audit import AuditLog
from replayrec.promotion._gates import Decision, GateConfig, load_gates
from replayrec.registry import ModelRegistry, StageResolver, git_commit, tracking_uri
from replayrec.stages import StageContext

__all__ = ["FaultInjection", "PipelineContext", "audit_log", "format_decision", "open_pipeline"]


@dataclass(frozen=True)
class FaultInjection:
    """Chaos drill for the canary: the candidate arm answers ``delay_ms`` later and fails a fraction of
    requests. Used by the fault-injection tests and game days; never applied outside the canary step."""

    delay_ms: float = 0.0
    error_rate: float = 0.0

    @property
    def active(self) -> bool:
        return self.delay_ms > 0 or self.error_rate > 0


@dataclass
class PipelineContext:
    settings: Settings
    dataset: Dataset
    plugin: str
    tracking_uri: str
    gates: GateConfig = field(default_factory=GateConfig)
    cascade: Path | None = None
    fault: FaultInjection = field(default_factory=FaultInjection)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    echo: Callable[[str], None] = print

    @cached_property
    def kind(self) -> str:
        return str(kind_of(self.plugin))

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri)

    @cached_property
    def audit(self) -> AuditLog:
        return audit_log(self.settings)

    @cached_property
    def protocol(self) -> str:
        return DATASETS[self.dataset.name].protocol

    @cached_property
    def split(self) -> ProtocolSplit:
        return build_split(self.dataset, self.protocol)

    @cached_property
    def resolver(self) -> StageResolver:
        ctx = StageContext(self.dataset.catalog, self.split.fit, seed=self.settings.seed)
        return StageResolver(self.settings, self.dataset.name, ctx, self.tracking_uri, self.protocol)

    def record(self, decision: Decision, outcome: str | None = None) -> Decision:
        """Tag the model version, append to the audit log and print the decision with its numbers."""
        outcome = outcome or ("passed" if decision.passed else "failed")
        self.registry.set_tags(
            self.plugin,
            decision.version,
            {f"gate.{decision.step}": outcome, f"gate.{decision.step}.reason": decision.reason},
        )
        self.audit.append(
            {
                **decision.to_dict(),
                "outcome": outcome,
                "pipeline_run": self.run_id,
                "dataset": self.dataset.name,
                "git_commit": git_commit(),
            }
        )
        self.echo(format_decision(decision, outcome))
        return decision


def audit_log(settings: Settings) -> AuditLog:
    """The append-only promotion audit log of a state directory."""
    return AuditLog(settings.state_dir / "audit" / "promotion.jsonl")


def open_pipeline(
    settings: Settings,
    plugin: str,
    dataset: str | None = None,
    tracking: str | None = None,
    gates: Path | None = None,
    cascade: Path | None = None,
    fault: FaultInjection = FaultInjection(),
    echo: Callable[[str], None] = print,
    until: int | None = None,
    window_days: float | None = None,
) -> PipelineContext:
    """The context every step of one pipeline run shares; bad input fails here, before data is loaded.
    ``until`` (Unix seconds): the dataset as it stood then (a retraining triggered at that moment);
    ``window_days``: only its last days (train and evaluate on the recent behaviour)."""
    kind_of(plugin)  # unknown plugin: fail before loading data
    gate_config = load_gates(gates)
    if cascade is not None and not cascade.is_file():
        raise ConfigError(f"cascade {cascade} does not exist")
    if not 0 <= fault.error_rate <= 1 or fault.delay_ms < 0:
        raise ConfigError("fault injection needs delay ≥ 0 ms and an error rate in [0, 1]")
    ds = open_dataset(settings, dataset)
    window_s = None if window_days is None else window_days * 86_400
    return PipelineContext(
        settings=settings,
        dataset=ds if until is None and window_days is None else ds.as_of(until, window_s),
        plugin=plugin,
        tracking_uri=tracking_uri(settings, tracking),
        gates=gate_config,
        cascade=cascade,
        fault=fault,
        echo=echo,
    )


def format_decision(decision: Decision, outcome: str) -> str:
    mark = "PASS" if decision.passed else "FAIL"
    lines = [f"[{decision.step}] {mark} ({outcome}) {decision.plugin} v{decision.version}: {decision.reason}"]
    for c in decision.checks:
        lines.append(f"    {'ok ' if c.passed else 'BAD'} {c.name}: {c.detail}")
    return "\n".join(lines)
