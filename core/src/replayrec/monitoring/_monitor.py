"""The monitor: every ``check_every_s``, the newest events on the bus against the training window of the model
served at ``prod`` (data drift), each arm's online HR@10 and CTR from the service against the offline
evaluation of the version it serves (degradation), the registry's aliases (the registry exporter) — all as
Prometheus metrics — and, when something crosses its threshold, retraining (:mod:`._retrain`)."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from replayrec.artifacts import artifact_meta
from replayrec.bus import BusConfig, EventReader
from replayrec.config import Settings
from replayrec.data import Dataset
from replayrec.errors import ConfigError, ReplayrecError, describe_validation_error
from replayrec.monitoring._drift import DriftReport, DriftThresholds, Window, compute_drift
from replayrec.monitoring._metrics import DRIFT_FEATURES, DRIFT_SCORES, MonitorMetrics
from replayrec.monitoring._retrain import RetrainConfig
from replayrec.plugins import kind_of
from replayrec.promotion import ServiceError, arm_window, fetch_arms
from replayrec.registry import ModelRegistry, VersionInfo

__all__ = [
    "ArmHealth",
    "LiveWindow",
    "ModelMonitor",
    "MonitorConfig",
    "MonitorReport",
    "load_monitor_config",
]

log = logging.getLogger("replayrec.monitor")

ALIASES = ("prod", "canary", "staging", "prod-previous")
_KIND_ORDER = {"rerank": 0, "rank": 1, "recall": 2}  # the last stage of an arm stands for the arm


class MonitorConfig(BaseModel):
    """``configs/monitor.yaml``: how often, over how much, and the thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check_every_s: float = Field(default=30.0, gt=0)
    #: the live window: the newest events on the topic
    window_events: int = Field(default=5000, ge=10)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    #: whose training window the live traffic is compared with (the recall: it decides what can be shown)
    plugin: str = "lightgcn"
    #: an arm is degraded when online HR@10 < ``degradation_ratio`` × the offline HR@10 of its version
    degradation_ratio: float = Field(default=0.5, gt=0, le=1)
    #: events (HR) or impressions (CTR) an arm needs before its online number counts
    min_online_events: int = Field(default=200, ge=1)
    #: the online window: the arm's counters over the last this many checks (they restart with a new model)
    online_checks: int = Field(default=20, ge=2)
    #: retrain only when a verdict holds for this many consecutive checks (a blip is not a trend, and the
    #: retraining then sees more of the new behaviour)
    sustain_checks: int = Field(default=3, ge=1)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)


def load_monitor_config(path: Path | None, **overrides: Any) -> MonitorConfig:
    """The YAML at ``path`` (None: the defaults), then ``overrides``; a bad key fails naming it."""
    raw: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"monitor config {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"monitor config {path}: expected a mapping, got {type(loaded).__name__}")
        raw = loaded
    try:
        return MonitorConfig.model_validate({**raw, **overrides})
    except ValidationError as exc:
        where = path or "(defaults)"
        raise ConfigError(f"monitor config {where}: {describe_validation_error(exc)}") from None


class LiveWindow:
    """The newest ``size`` events of the events topic as dense ids, read incrementally (no consumer group:
    the monitor never moves anyone's offsets). Events on items outside the catalogue are counted, not kept."""

    def __init__(self, cfg: BusConfig, ds: Dataset, size: int) -> None:
        self.size = size
        self.cfg = cfg
        self._reader: EventReader | None = None  # connected on the first poll
        self.items = {str(r): i for i, r in enumerate(ds.catalog.raw_ids)}
        self.users = {str(r): int(u) for u, r in zip(ds.users["user"], ds.users["raw_id"], strict=True)}
        self.new_user = ds.n_users  # the dense id standing for every user the dataset does not know
        self.rows: deque[tuple[int, int, int]] = deque(maxlen=size)
        self.offsets: dict[int, int] | None = None
        self.unknown_items = 0
        self.read_total = 0

    @property
    def reader(self) -> EventReader:
        if self._reader is None:
            self._reader = EventReader(self.cfg)
        return self._reader

    def poll(self, timeout_s: float = 30.0) -> int:
        """Read what arrived since the last poll (the first one: the newest ``size`` events); how many."""
        end = self.reader.end_offsets()
        if self.offsets is None:
            per = math.ceil(self.size / max(len(end), 1))
            self.offsets = {p: max(0, e - per) for p, e in end.items()}
        if all(self.offsets.get(p, 0) >= e for p, e in end.items()):
            return 0
        got = self.reader.read(self.offsets, end, timeout_s)
        got.sort(key=lambda c: (c.event.event_time, c.partition, c.offset))
        for ce in got:
            item = self.items.get(ce.event.item)
            if item is None:
                self.unknown_items += 1
                continue
            user = self.users.get(ce.event.user, self.new_user)
            self.rows.append((user, item, int(ce.event.event_time.timestamp())))
        self.offsets = dict(end)
        self.read_total += len(got)
        return len(got)

    def window(self) -> Window:
        arr = np.asarray(self.rows, dtype=np.int64).reshape(-1, 3)
        return Window(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    def last_time(self) -> int | None:
        return self.rows[-1][2] if self.rows else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass(frozen=True)
class ArmHealth:
    """One arm's online numbers over the window, and the offline evaluation of the version it serves."""

    arm: str
    versions: dict[str, str]
    events: int
    impressions: int
    hr: float | None
    ctr: float | None
    offline_hr: float | None
    ratio: float | None
    degraded: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MonitorReport:
    """One check: the drift report, each arm's health, what the registry holds, and the verdicts."""

    time: float
    drift: DriftReport | None
    arms: dict[str, ArmHealth] = field(default_factory=dict)
    registry: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    trained_on: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Why retraining is called for (empty: nothing is)."""
        out = [f"drift: {a}" for a in (self.drift.alarms if self.drift else [])]
        out += [
            f"degradation: arm {h.arm} online hr@10 {h.hr:.3f} is {h.ratio:.2f} × offline {h.offline_hr:.3f}"
            for h in self.arms.values()
            if h.degraded and h.hr is not None and h.ratio is not None and h.offline_hr is not None
        ]
        return out

    @property
    def trigger(self) -> str | None:
        if self.drift is not None and self.drift.alarms:
            return "drift"
        return "degradation" if any(h.degraded for h in self.arms.values()) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "arms": {a: h.to_dict() for a, h in self.arms.items()},
            "registry": self.registry,
            "trained_on": self.trained_on,
            "reasons": self.reasons,
            "trigger": self.trigger,
            "errors": self.errors,
        }


class ModelMonitor:
    """The checks behind ``replayrec monitor run`` / ``drift`` (the service loop calls :meth:`check`)."""

    def __init__(
        self,
        settings: Settings,
        ds: Dataset,
        tracking_uri: str,
        config: MonitorConfig,
        service_url: str | None = None,
        metrics: MonitorMetrics | None = None,
    ) -> None:
        self.settings, self.ds, self.config = settings, ds, config
        self.registry = ModelRegistry(tracking_uri)
        self.service_url = service_url.rstrip("/") if service_url else None
        self.metrics = metrics or MonitorMetrics()
        self.window = LiveWindow(BusConfig.from_settings(settings), ds, config.window_events)
        self._arms: deque[dict[str, Any]] = deque(maxlen=config.online_checks)
        self._train: tuple[str, Window] | None = None  # (model version, its training window)
        self._offline: dict[tuple[str, str], float | None] = {}
        m = self.metrics
        for score in DRIFT_SCORES:
            m.drift_threshold.labels(score).set(getattr(config.drift, score))
        m.unseen_threshold.labels("item").set(config.drift.unseen_item)
        m.unseen_threshold.labels("user").set(config.drift.unseen_user)
        m.ratio_threshold.set(config.degradation_ratio)

    # -- the training window of the version at prod -----------------------------------------------------
    def _training_window(self, version: VersionInfo) -> Window:
        if self._train is not None and self._train[0] == version.version:
            return self._train[1]
        meta = artifact_meta(version.artifact)
        span = meta.get("train_window") or {}
        ev = self.ds.events
        ts = ev["timestamp"].to_numpy()
        lo, hi = int(span.get("from", ts.min(initial=0))), int(span.get("until", ts.max(initial=0) + 1))
        mask = (ts >= lo) & (ts < hi)
        win = Window(ev["user"].to_numpy()[mask], ev["item"].to_numpy()[mask], ts[mask])
        self._train = (version.version, win)
        return win

    def drift(self) -> tuple[DriftReport, dict[str, Any]]:
        """Read the bus, compare the live window with the prod model's training window."""
        prod = self.registry.by_alias(self.config.plugin, "prod")
        if prod is None:
            raise ReplayrecError(f"{self.config.plugin} has no prod version: nothing to compare with")
        train = self._training_window(prod)
        self.window.poll()
        live = self.window.window()
        # the new-user id (n_users) is outside the dataset's users: count arrays one longer
        report = compute_drift(train, live, self.ds.catalog.groups, self.ds.n_users + 1, self.config.drift)
        on = {"plugin": self.config.plugin, "version": prod.version, "events": len(train)}
        on["from"], on["until"] = int(train.times.min(initial=0)), int(train.times.max(initial=0)) + 1
        return report, on

    # -- online vs offline, per arm -----------------------------------------------------------------------
    def _offline_hr(self, plugin: str, version: str) -> float | None:
        key = (plugin, version)
        if key not in self._offline:
            try:
                meta = artifact_meta(self.registry.get(plugin, version).artifact)
                value = (meta.get("val_metrics") or {}).get("hr@10")
                self._offline[key] = float(value) if value is not None else None
            except (ReplayrecError, OSError, ValueError):
                self._offline[key] = None
        return self._offline[key]

    def _reference(self, versions: Mapping[str, str]) -> tuple[str, str] | None:
        """The arm's last model stage (rerank, else rank, else recall): its validation stands for the arm."""
        staged = []
        for plugin, version in versions.items():
            try:
                staged.append((_KIND_ORDER.get(str(kind_of(plugin)), 9), plugin, version))
            except ReplayrecError:
                continue
        return (staged and min(staged)[1:]) or None

    def arms(self) -> dict[str, ArmHealth]:
        if self.service_url is None:
            return {}
        doc = fetch_arms(self.service_url)
        self._arms.append(doc)
        first = self._arms[0]
        serving = (doc.get("serving") or {}).get("arms") or {}
        out: dict[str, ArmHealth] = {}
        for arm, now in sorted((doc.get("arms") or {}).items()):
            win = arm_window(first["arms"].get(arm) if first is not doc else None, now)
            served = (serving.get(arm) or {}).get("versions") or {}
            versions = {str(k): str(v).removeprefix("v") for k, v in served.items()}
            ref = self._reference(versions)
            offline = self._offline_hr(*ref) if ref else None
            events, shown = int(win["events"]), int(win["impressions"])
            hr = win["hr"] if events >= self.config.min_online_events else None
            ctr = win["ctr"] if shown >= self.config.min_online_events else None
            ratio = hr / offline if hr is not None and offline else None
            degraded = ratio is not None and ratio < self.config.degradation_ratio
            out[arm] = ArmHealth(arm, versions, events, shown, hr, ctr, offline, ratio, degraded)
        return out

    # -- the registry exporter ----------------------------------------------------------------------------
    def registry_state(self) -> dict[str, dict[str, str]]:
        m = self.metrics
        m.model.clear()
        out: dict[str, dict[str, str]] = {}
        for plugin in self.registry.plugins():
            for alias in ALIASES:
                v = self.registry.by_alias(plugin, alias)
                if v is None:
                    continue
                out.setdefault(plugin, {})[alias] = v.version
                m.model.labels(plugin, alias, v.version).set(1)
                m.trained.labels(plugin, alias).set(v.created / 1000 if v.created > 1e11 else v.created)
                for metric, value in v.metrics("eval").items():
                    m.model_metric.labels(plugin, v.version, metric).set(value)
                offline = self._offline_hr(plugin, v.version)
                if offline is not None:
                    m.model_metric.labels(plugin, v.version, "val_hr@10").set(offline)
        return out

    # -- one check ------------------------------------------------------------------------------------------
    def check(self) -> MonitorReport:
        """Everything once; what fails is reported (and counted), never raised: a monitor keeps watching."""
        report = MonitorReport(time=time.time(), drift=None)
        m = self.metrics
        steps: list[tuple[str, Callable[[], None]]] = [
            ("registry", lambda: setattr(report, "registry", self.registry_state())),
            ("drift", lambda: self._drift_into(report)),
            ("service", lambda: setattr(report, "arms", self.arms())),
        ]
        for where, step in steps:
            try:
                step()
            except (ReplayrecError, ServiceError, OSError) as exc:
                m.check_errors.labels(where).inc()
                report.errors.append(f"{where}: {exc}")
                log.warning("monitor check, %s: %s", where, exc)
        self._export(report)
        m.checks.inc()
        m.last_check.set(time.time())
        return report

    def _drift_into(self, report: MonitorReport) -> None:
        report.drift, report.trained_on = self.drift()

    def _export(self, report: MonitorReport) -> None:
        m = self.metrics
        if report.drift is not None:
            d = report.drift
            for feature in DRIFT_FEATURES:
                for score in DRIFT_SCORES:
                    m.drift.labels(feature, score).set(d.scores[feature][score])
            for kind, share in d.unseen.items():
                m.unseen.labels(kind).set(share)
            for name, n in d.events.items():
                m.window.labels(name).set(n)
        for arm, h in report.arms.items():
            m.samples.labels(arm, "hr@10").set(h.events)
            m.samples.labels(arm, "ctr").set(h.impressions)
            for metric, value in (("hr@10", h.hr), ("ctr", h.ctr)):
                if value is not None:
                    m.online.labels(arm, metric).set(value)
            if h.offline_hr is not None:
                m.offline.labels(arm, "hr@10").set(h.offline_hr)
            if h.ratio is not None:
                m.ratio.labels(arm, "hr@10").set(h.ratio)

    def close(self) -> None:
        self.window.close()
