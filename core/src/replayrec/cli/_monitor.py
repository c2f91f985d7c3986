"""``replayrec monitor``: drift and degradation once (``drift``) or as a service (``run``) that retrains on
alert. The Prometheus checks, the dashboards and the end-to-end drill join this group (``check``,
``dashboards``; ``drill`` comes with the serving package)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from replayrec.application import open_dataset
from replayrec.bus import RedisStateStore
from replayrec.cli._common import dataset_option, echo_json, json_option, settings_of, stop_on_signals
from replayrec.cli._infra import report_steps
from replayrec.config import Settings
from replayrec.monitoring import (
    JOBS,
    ModelMonitor,
    MonitorConfig,
    MonitorReport,
    MonitorService,
    RetrainTrigger,
    check_monitoring,
    load_monitor_config,
    prometheus_config,
    prometheus_rule_path,
    prometheus_tools,
    render_prometheus_rule,
    rule_files,
    start_prometheus,
)
from replayrec.registry import tracking_uri

__all__ = ["monitor"]

_config = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="monitor config YAML (default: configs/monitor.yaml when present, else the built-in defaults)",
)  # fmt: skip
_service = click.option("--service-url", help="the recommendation service, for per-arm online numbers")
_tracking = click.option("--tracking-uri", "tracking", help="MLflow registry URI [default: the state dir's]")


def _config_path(path: Path | None) -> Path | None:
    if path is not None:
        return path
    default = Path("configs/monitor.yaml")
    return default if default.is_file() else None


def _monitor(
    settings: Settings, name: str | None, tracking: str | None, config: MonitorConfig, service_url: str | None
) -> ModelMonitor:
    ds = open_dataset(settings, name)
    return ModelMonitor(settings, ds, tracking_uri(settings, tracking), config, service_url)


def format_report(report: MonitorReport) -> str:
    lines = []
    d = report.drift
    if d is not None:
        on = report.trained_on
        lines.append(
            f"live window {d.events['live']:,} events vs the training window of {on.get('plugin')} "
            f"v{on.get('version')} ({d.events['train']:,} events)"
        )
        for feature, scores in d.scores.items():
            lines.append(f"  {feature:<16} PSI {scores['psi']:7.3f}   JS {scores['js']:6.3f}")
        lines.append(
            f"  unseen share     items {d.unseen['item']:.3f}   users {d.unseen['user']:.3f}"
            + ("" if d.enough else f"   (fewer than {d.thresholds.min_events} live events: no verdict)")
        )
    for arm, h in report.arms.items():
        hr = "–" if h.hr is None else f"{h.hr:.3f}"
        off = "–" if h.offline_hr is None else f"{h.offline_hr:.3f}"
        lines.append(f"  arm {arm:<12} online hr@10 {hr} ({h.events} events), offline {off}"
                     + ("  DEGRADED" if h.degraded else ""))  # fmt: skip
    lines += [f"  error: {e}" for e in report.errors]
    lines.append("verdict: " + ("; ".join(report.reasons) if report.reasons else "no drift, no degradation"))
    return "\n".join(lines)


@click.group()
def monitor() -> None:
    """Drift, degradation, alerts and retraining on alert."""


@monitor.command("drift")
@dataset_option
@_config
@_service
@_tracking
@json_option
@click.pass_context
def drift_cmd(
    ctx: click.Context,
    name: str | None,
    config_path: Path | None,
    service_url: str | None,
    tracking: str | None,
    as_json: bool,
) -> None:
    """One check: the newest events on the bus against the prod model's training window (PSI, JS, unseen
    items and users), and per arm online HR@10 / CTR against the offline evaluation (with --service-url).
    Exit 0 whatever it finds; the verdict is in the output."""
    cfg = load_monitor_config(_config_path(config_path))
    mon = _monitor(settings_of(ctx), name, tracking, cfg, service_url)
    try:
        report = mon.check()
    finally:
        mon.close()
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(format_report(report))


@monitor.command("run")
@dataset_option
@_config
@_service
@_tracking
@click.option("--port", type=click.IntRange(1, 65535), default=9467, show_default=True)
@click.option("--host", help="interface to bind [default: REPLAYREC_METRICS_HOST, 127.0.0.1]; a pod: 0.0.0.0")
@click.option("--checks", type=click.IntRange(min=1), help="stop after this many checks (default: Ctrl-C)")
@click.option("--no-retrain", is_flag=True, help="watch and alert only")
@click.pass_context
def run_cmd(ctx: click.Context, /, **o: Any) -> None:
    """The monitor as a service on 127.0.0.1: a check every check_every_s, its metrics on /metrics (scraped by
    Prometheus), retraining when a check (or an Alertmanager webhook on POST /v1/alerts, bearer token
    REPLAYREC_ADMIN_TOKEN) calls for it — at most once per cool-down. Ctrl-C stops it."""
    settings = settings_of(ctx)
    cfg = load_monitor_config(_config_path(o["config_path"]))
    if o["no_retrain"]:
        cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"enabled": False})})
    mon = _monitor(settings, o["name"], o["tracking"], cfg, o["service_url"])
    clock = RedisStateStore(settings.redis_url, settings.bus_namespace)

    def replay_clock() -> float | None:
        state = clock.read()
        return None if state is None else state.clock

    uri = mon.registry.tracking_uri
    trigger = RetrainTrigger(settings, cfg.retrain, mon.ds.name, uri, mon.metrics, replay_clock)
    service = MonitorService(mon, trigger, token=os.environ.get("REPLAYREC_ADMIN_TOKEN") or None)
    stop = stop_on_signals()
    try:
        host = o["host"] or settings.metrics_host
        with service.serve(host=host, port=o["port"]) as server:
            click.echo(f"monitor on http://{host}:{server.server_port}/metrics; Ctrl-C stops", err=True)
            service.run(stop, o["checks"])
    finally:
        mon.close()
        clock.close()
    if service.last is not None:
        click.echo(format_report(service.last))


@monitor.command("tools")
@json_option
def tools_cmd(as_json: bool) -> None:
    """Prometheus, promtool, Alertmanager and amtool: from PATH, the cache, or Debian's packages downloaded
    and unpacked into the cache (nothing installed system-wide); where they are and their versions."""
    tools = prometheus_tools()
    doc = {k: str(v) if isinstance(v, Path) else v for k, v in tools.__dict__.items()}
    if as_json:
        echo_json(doc)
    else:
        click.echo(f"prometheus {tools.version} ({tools.source}, {tools.seconds:.1f} s): {tools.prometheus}")
        click.echo(f"alertmanager {tools.alertmanager_version}: {tools.alertmanager}")


@monitor.command("check")
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool) -> None:
    """promtool check rules, promtool test rules (every alert's firing and quiet cases), promtool check
    config on a generated configuration, amtool check-config. Exit 1 when one fails."""
    report_steps(check_monitoring(settings_of(ctx)), as_json)


@monitor.command("rules")
@click.option("--write", is_flag=True, help="regenerate the PrometheusRule (else: check it is current)")
@click.pass_context
def rules_cmd(ctx: click.Context, write: bool) -> None:
    """The cluster's copy of the rules: deploy/k8s/base/monitor/prometheusrule.yaml, generated from
    deploy/monitoring/prometheus/rules. --write regenerates it; without it, exit 1 when it is stale."""
    settings = settings_of(ctx)
    path, text = prometheus_rule_path(settings), render_prometheus_rule(settings)
    if write:
        path.write_text(text)
        click.echo(f"wrote {path}")
    elif not path.is_file() or path.read_text() != text:
        raise click.ClickException(f"{path} is stale: run `replayrec monitor rules --write` and commit it")
    else:
        click.echo(f"{path}: current")


@monitor.command("prometheus")
@click.option(
    "--target", "targets", multiple=True, metavar="JOB=HOST:PORT",
    help=f"a scrape target (repeat; jobs {', '.join(JOBS)}); default: the local defaults",
)  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True)
@click.option("--scrape-interval", type=click.FloatRange(min=1), default=15.0, show_default=True)
@click.pass_context
def prometheus_cmd(ctx: click.Context, targets: tuple[str, ...], port: int, scrape_interval: float) -> None:
    """Prometheus on 127.0.0.1 with a generated configuration and the project's rules, scraping the service,
    the stream job, the replay controller and the monitor, until Ctrl-C (then it is stopped)."""
    settings = settings_of(ctx)
    scrape: dict[str, list[str]] = {}
    for t in targets or _DEFAULT_TARGETS:
        job, sep, at = t.partition("=")
        if not sep:
            raise click.BadParameter(f"{t!r}: expected JOB=HOST:PORT", param_hint="--target")
        scrape.setdefault(job, []).append(at)
    every = scrape_interval
    config = prometheus_config(scrape, scrape_interval_s=every, evaluation_interval_s=every,
                               rule_files=rule_files(settings))  # fmt: skip
    stop = stop_on_signals()
    with start_prometheus(config, settings.state_dir / "prometheus" / "local", port=port) as server:
        click.echo(f"Prometheus at {server.url} (alerts: {server.url}/alerts); Ctrl-C stops it", err=True)
        stop.wait()


_DEFAULT_TARGETS = ("service=127.0.0.1:8000", "stream=127.0.0.1:9466", "replay=127.0.0.1:9465",
                    "monitor=127.0.0.1:9467")  # fmt: skip
