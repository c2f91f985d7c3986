"""Prometheus metrics of the monitor (``replayrec monitor run``): data drift, online vs offline model quality,
the registry's state (the registry exporter) and the retraining it triggered."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["DRIFT_FEATURES", "DRIFT_SCORES", "MonitorMetrics"]

#: the distributions compared between the training window and the live window
DRIFT_FEATURES = ("item_group", "item_popularity", "user_activity")
#: the divergences computed for each of them
DRIFT_SCORES = ("psi", "js")


class MonitorMetrics:
    """The monitor's metrics in a registry of their own (never the global default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        # -- data drift: the live window against the training window of the model served at prod
        self.drift = Gauge(
            "replayrec_drift_score", "divergence of a distribution, live window vs training window",
            ["feature", "score"], registry=r,
        )  # fmt: skip
        self.drift_threshold = Gauge(
            "replayrec_drift_threshold", "alert threshold of each divergence", ["score"], registry=r
        )
        self.unseen = Gauge(
            "replayrec_drift_unseen_share",
            "share of the live window's events on items (users) the served model never saw in training",
            ["kind"], registry=r,
        )  # fmt: skip
        self.unseen_threshold = Gauge(
            "replayrec_drift_unseen_threshold", "alert threshold of the unseen share", ["kind"], registry=r
        )
        self.window = Gauge(
            "replayrec_drift_window_events", "events in each compared window", ["window"], registry=r
        )
        # -- label / outcome drift and model degradation, per arm of the service
        self.online = Gauge(
            "replayrec_online_metric", "online quality of an arm over the monitor's window (hr@10, ctr)",
            ["arm", "metric"], registry=r,
        )  # fmt: skip
        self.offline = Gauge(
            "replayrec_offline_metric", "offline evaluation of the model version an arm serves (hr@10)",
            ["arm", "metric"], registry=r,
        )  # fmt: skip
        self.ratio = Gauge(
            "replayrec_degradation_ratio", "online / offline quality of an arm (1: as evaluated offline)",
            ["arm", "metric"], registry=r,
        )  # fmt: skip
        self.ratio_threshold = Gauge(
            "replayrec_degradation_threshold", "alert threshold of the online / offline ratio", registry=r
        )
        self.samples = Gauge(
            "replayrec_online_samples", "events (hr@10) or impressions (ctr) behind an online number",
            ["arm", "metric"], registry=r,
        )  # fmt: skip
        # -- the registry exporter: what each alias points at, and each such version's offline numbers
        self.model = Gauge(
            "replayrec_model_info", "registry aliases (1 = the alias points at this version)",
            ["plugin", "alias", "version"], registry=r,
        )  # fmt: skip
        self.model_metric = Gauge(
            "replayrec_model_offline_metric", "validation metrics a registered version was trained with",
            ["plugin", "version", "metric"], registry=r,
        )  # fmt: skip
        self.trained = Gauge(
            "replayrec_model_trained_timestamp_seconds", "when the version an alias points at was registered",
            ["plugin", "alias"], registry=r,
        )  # fmt: skip
        # -- the monitor itself and the retraining it triggers
        self.checks = Counter("replayrec_monitor_checks", "drift and degradation checks run", registry=r)
        self.check_errors = Counter(
            "replayrec_monitor_check_errors", "checks that failed, by what failed", ["where"], registry=r
        )
        self.last_check = Gauge(
            "replayrec_monitor_last_check_timestamp_seconds", "when the last check finished", registry=r
        )
        self.retrains = Counter(
            "replayrec_monitor_retrains", "retraining requests, by plugin, trigger and outcome",
            ["plugin", "trigger", "outcome"], registry=r,
        )  # fmt: skip
        self.last_retrain = Gauge(
            "replayrec_monitor_last_retrain_timestamp_seconds", "when retraining was last started",
            ["plugin"], registry=r,
        )  # fmt: skip
