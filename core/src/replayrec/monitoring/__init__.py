"""Monitoring: Prometheus (the server and promtool, its generated configuration, the recording and alert
rules), Grafana dashboards as code, data / outcome drift and model degradation, retraining on alert."""

from replayrec.monitoring._dashboards import (
    DASHBOARDS_DIR,
    check_dashboards,
    dashboards,
    dashboards_configmap,
    write_dashboards,
)
from replayrec.monitoring._drift import (
    DriftReport,
    DriftThresholds,
    Window,
    compute_drift,
    jensen_shannon,
    psi,
)
from replayrec.monitoring._metrics import DRIFT_FEATURES, DRIFT_SCORES, MonitorMetrics
from replayrec.monitoring._monitor import (
    ArmHealth,
    LiveWindow,
    ModelMonitor,
    MonitorConfig,
    MonitorReport,
    load_monitor_config,
)
from replayrec.monitoring._prometheus import (
    JOBS,
    PrometheusTools,
    prometheus_config,
    prometheus_tools,
    rule_files,
    rule_tests_dir,
    rules_dir,
    write_prometheus_config,
)
from replayrec.monitoring._promtool import (
    ToolCheck,
    check_alertmanager_config,
    check_config,
    check_monitoring,
    check_rules,
    test_rules,
)
from replayrec.monitoring._retrain import RetrainConfig, RetrainJob, RetrainTrigger
from replayrec.monitoring._server import (
    AlertmanagerServer,
    PrometheusServer,
    alertmanager_config,
    alerts,
    query,
    reload,
    start_alertmanager,
    start_prometheus,
    wait_for_alert,
)
from replayrec.monitoring._service import MonitorService, alert_reasons

__all__ = [
    "DASHBOARDS_DIR",
    "DRIFT_FEATURES",
    "DRIFT_SCORES",
    "JOBS",
    "AlertmanagerServer",
    "ArmHealth",
    "DriftReport",
    "DriftThresholds",
    "LiveWindow",
    "ModelMonitor",
    "MonitorConfig",
    "MonitorMetrics",
    "MonitorReport",
    "MonitorService",
    "PrometheusServer",
    "PrometheusTools",
    "RetrainConfig",
    "RetrainJob",
    "RetrainTrigger",
    "ToolCheck",
    "Window",
    "alert_reasons",
    "alertmanager_config",
    "alerts",
    "check_alertmanager_config",
    "check_config",
    "check_dashboards",
    "check_monitoring",
    "check_rules",
    "compute_drift",
    "dashboards",
    "dashboards_configmap",
    "jensen_shannon",
    "load_monitor_config",
    "prometheus_config",
    "prometheus_tools",
    "psi",
    "query",
    "reload",
    "rule_files",
    "rule_tests_dir",
    "rules_dir",
    "start_alertmanager",
    "start_prometheus",
    "test_rules",
    "wait_for_alert",
    "write_dashboards",
    "write_prometheus_config",
]
