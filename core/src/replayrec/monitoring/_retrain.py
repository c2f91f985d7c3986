"""Retraining on alert: a drift or degradation verdict (the monitor's own, or an Alertmanager webhook) starts
the promotion pipeline of one plugin — on the Argo server from the plugin's retraining CronWorkflow when one
is configured (``REPLAYREC_ARGO_SERVER``), else ``replayrec pipeline run`` as a local process — with the
reason in the promotion audit log. A cool-down per plugin (kept on disk, so a restarted monitor keeps it) and
one run at a time prevent retrain storms."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from replayrec.application import settings_env
from replayrec.config import Settings
from replayrec.errors import ReplayrecError
from replayrec.infra import argo_submit
from replayrec.monitoring._metrics import MonitorMetrics
from replayrec.promotion import audit_log
from replayrec.runtime import spawn, write_json_atomic

__all__ = ["EXIT_PROMOTED", "EXIT_STOPPED", "RetrainConfig", "RetrainJob", "RetrainTrigger"]

log = logging.getLogger("replayrec.monitor")

EXIT_PROMOTED, EXIT_STOPPED = 0, 3  # `replayrec pipeline run`: promoted / a gate stopped the candidate


class RetrainConfig(BaseModel):
    """What an alert retrains, and how often at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    plugin: str = "lightgcn"
    #: no second retraining of a plugin within this many seconds of the last one started
    cooldown_s: float = Field(default=6 * 3600.0, ge=0)
    gates: Path | None = None
    cascade: Path | None = None
    train_config: Path | None = None
    sets: tuple[str, ...] = ()
    #: train on the dataset as it stood at the replay clock (drills on a replayed history), not all of it
    as_of_clock: bool = False
    #: train (and gate) on the last days of data only: after a shift, the new behaviour is the bulk of it
    window_days: float | None = Field(default=None, gt=0)


@dataclass
class RetrainJob:
    """One retraining started: where it runs and, once finished, how it ended."""

    plugin: str
    trigger: str
    reasons: list[str]
    via: str  # "local" or "argo"
    started: float
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    workflow: str | None = None
    until: int | None = None
    outcome: str | None = None  # promoted | stopped | failed (None: running, or on the Argo server)
    finished: float | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)

    def poll(self) -> str | None:
        """``None`` while running; then its outcome (local runs: from the exit status)."""
        if self.outcome is not None or self.proc is None:
            return self.outcome
        rc = self.proc.poll()
        if rc is None:
            return None
        self.outcome = {EXIT_PROMOTED: "promoted", EXIT_STOPPED: "stopped"}.get(rc, "failed")
        self.finished = time.time()
        return self.outcome

    def wait(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        while self.poll() is None and self.proc is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.poll()

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin, "trigger": self.trigger, "reasons": self.reasons, "via": self.via,
            "started": self.started, "finished": self.finished, "outcome": self.outcome,
            "workflow": self.workflow, "until": self.until,
            "log": str(self.log_path) if self.log_path else None,
        }  # fmt: skip


class RetrainTrigger:
    """Starts retraining when asked, unless one is running or the plugin's cool-down has not passed."""

    def __init__(
        self,
        settings: Settings,
        config: RetrainConfig,
        dataset: str,
        tracking_uri: str,
        metrics: MonitorMetrics | None = None,
        clock: Callable[[], float | None] | None = None,
    ) -> None:
        self.settings, self.config, self.dataset, self.tracking_uri = settings, config, dataset, tracking_uri
        self.metrics = metrics or MonitorMetrics()
        self.clock = clock
        self.folder = settings.state_dir / "monitor"
        self.state_path = self.folder / "retrain.json"
        self.current: RetrainJob | None = None
        self.audit = audit_log(settings)

    def _state(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def cooldown_left(self, plugin: str, now: float | None = None) -> float:
        last = float((self._state().get(plugin) or {}).get("started", 0.0))
        return max(0.0, last + self.config.cooldown_s - (now or time.time()))

    def request(self, reasons: list[str], trigger: str, plugin: str | None = None) -> RetrainJob | None:
        """Start retraining ``plugin`` (default: the configured one) for ``reasons``; the job, or ``None``
        when it is disabled, already running or cooling down (counted under that outcome)."""
        plugin = plugin or self.config.plugin
        outcome = self._refusal(plugin)
        if outcome is not None:
            self.metrics.retrains.labels(plugin, trigger, outcome).inc()
            return None
        now = time.time()
        until = self._until()
        via = "argo" if self.settings.argo_server else "local"
        job = RetrainJob(plugin, trigger, list(reasons), via, now, until=until)
        try:
            if job.via == "argo":
                run = argo_submit(self.settings, plugin, dataset=self.dataset, from_cron=True)
                job.workflow = run.name
            else:
                self._start_local(job)
        except ReplayrecError as exc:
            job.outcome, job.finished = "failed", time.time()
            self._record(job, "failed", str(exc))
            self.metrics.retrains.labels(plugin, trigger, "failed").inc()
            raise
        state = self._state()
        state[plugin] = {"started": now, "trigger": trigger, "reasons": job.reasons}
        write_json_atomic(self.state_path, state)
        self._record(job, "submitted")
        self.metrics.retrains.labels(plugin, trigger, "submitted").inc()
        self.metrics.last_retrain.labels(plugin).set(now)
        self.current = job
        return job

    def _refusal(self, plugin: str) -> str | None:
        if not self.config.enabled:
            return "disabled"
        if self.current is not None and self.current.poll() is None and self.current.via == "local":
            return "busy"
        return "cooldown" if self.cooldown_left(plugin) > 0 else None

    def _until(self) -> int | None:
        if not self.config.as_of_clock or self.clock is None:
            return None
        at = self.clock()
        if at is None:
            raise ReplayrecError("retraining as of the replay clock, but no replay clock is published")
        return int(at)

    def _start_local(self, job: RetrainJob) -> None:
        c = self.config
        argv = [sys.executable, "-m", "replayrec", "pipeline", "run", job.plugin, "--dataset", self.dataset,
                "--tracking-uri", self.tracking_uri]  # fmt: skip
        for flag, value in (("--gates", c.gates), ("--cascade", c.cascade), ("--config", c.train_config)):
            if value is not None:
                argv += [flag, str(value)]
        for s in c.sets:
            argv += ["--set", s]
        if job.until is not None:
            argv += ["--until", str(job.until)]
        if c.window_days is not None:
            argv += ["--window-days", str(c.window_days)]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        job.log_path = self.folder / f"retrain-{job.plugin}-{stamp}.log"
        job.proc = spawn(argv, job.log_path, env=settings_env(self.settings))

    def finish(self, job: RetrainJob) -> str | None:
        """Record how a finished local job ended (once); its outcome, or ``None`` while it runs."""
        if job.poll() is None or job.via != "local" or len(job.audit) > 1:  # running, remote, or recorded
            return job.outcome
        outcome = job.outcome or "failed"
        self._record(job, outcome)
        self.metrics.retrains.labels(job.plugin, job.trigger, outcome).inc()
        return outcome

    def _record(self, job: RetrainJob, outcome: str, error: str | None = None) -> None:
        rec = {
            "step": "retrain", "plugin": job.plugin, "dataset": self.dataset, "trigger": job.trigger,
            "reason": "; ".join(job.reasons) or job.trigger, "via": job.via, "outcome": outcome,
            "workflow": job.workflow, "until": job.until, "log": str(job.log_path) if job.log_path else None,
            **({"error": error} if error else {}),
        }  # fmt: skip
        job.audit.append(self.audit.append(rec))
        log.info("retrain %s (%s): %s — %s", job.plugin, job.trigger, outcome, rec["reason"])
