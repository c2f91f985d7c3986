"""What the dashboards show, as plain data: rows of panels, each with its PromQL. ``_dashboards`` turns them
into Grafana JSON with the SDK.

Metric names are prometheus_client's exposition: a counter ``x`` is read as ``x_total``, a histogram as
``x_bucket`` / ``x_sum`` / ``x_count``. Rates use Grafana's ``$__rate_interval``; quality ratios a fixed
15-minute window (few events per scrape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = ["BoardSpec", "PanelSpec", "Query", "boards"]

RATE = "$__rate_interval"
ARM = 'arm=~"$arm"'
#: the window of the online quality ratios (the recording rules' and so the alerts')
QUALITY_WINDOW = "30m"


class Query(NamedTuple):
    expr: str
    legend: str = "__auto"
    #: drawn as a dashed red line: an alert threshold beside the series it bounds
    threshold: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    span: int = 12
    kind: Literal["timeseries", "bars", "stat", "table"] = "timeseries"
    description: str = ""
    height: int = 8


@dataclass(frozen=True)
class BoardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelSpec, ...]], ...]
    #: the series whose `arm` label the `arm` variable lists (None: no such variable)
    arms_from: str | None = None
    #: mark the service's model loads on every graph
    swaps: bool = False


def _sel(metric: str, matchers: str = "", window: str = "") -> str:
    return metric + (f"{{{matchers}}}" if matchers else "") + (f"[{window}]" if window else "")


def _sum(fn: str, metric: str, by: str = "", matchers: str = "", window: str = RATE) -> str:
    inner = f"{fn}({_sel(metric, matchers, window)})"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _rate(metric: str, by: str = "", matchers: str = "", window: str = RATE) -> str:
    return _sum("rate", metric, by, matchers, window)


def _increase(metric: str, by: str = "") -> str:
    return _sum("increase", metric, by)


def _quantile(q: float, histogram: str, by: str = "", matchers: str = "") -> str:
    buckets = _rate(f"{histogram}_bucket", ", ".join(("le", *([by] if by else []))), matchers)
    return f"histogram_quantile({q}, {buckets})"


def _graph(
    title: str, *queries: Query, unit: str = "short", span: int = 12, description: str = ""
) -> PanelSpec:
    return PanelSpec(title, queries, unit, span, "timeseries", description)


def _bars(title: str, *queries: Query, span: int = 12, description: str = "") -> PanelSpec:
    return PanelSpec(title, queries, "short", span, "bars", description)


def _stat(title: str, query: Query, unit: str, span: int = 6, description: str = "") -> PanelSpec:
    return PanelSpec(title, (query,), unit, span, "stat", description)


def _table(title: str, expr: str, span: int = 12, description: str = "") -> PanelSpec:
    return PanelSpec(title, (Query(expr),), "short", span, "table", description)


def _system() -> BoardSpec:
    req, hist = "replayrec_serve_request_seconds_count", "replayrec_serve_request_seconds"
    recs = 'endpoint="recommendations"'
    rec = f"{ARM}, {recs}"
    # 0 rather than no data while nothing failed
    fivexx = _rate(req, "arm", rec + ', status="error"')
    errors = f"({fivexx} or 0 * {_rate(req, 'arm', rec)}) / {_rate(req, 'arm', rec)}"
    degraded = _rate("replayrec_serve_degraded_total", "reason")
    degraded += f" / ignoring (reason) group_left {_rate(req, '', recs)}"
    hit = 'result="hit"'
    cache = f"{_rate('replayrec_serve_cache_total', '', hit)} / {_rate('replayrec_serve_cache_total')}"
    traffic = (
        _graph("QPS by arm", Query(_rate(req, "arm", rec), "{{arm}}"), unit="reqps"),
        _graph(
            "Error rate (5xx share) by arm",
            Query(errors, "{{arm}}"),
            unit="percentunit",
            span=6,
            description="Requests answered with a 5xx, as a share of all requests.",
        ),
        _graph(
            "Failures handled without a 5xx",
            Query(_rate("replayrec_serve_errors_total", "where"), "{{where}}"),
            unit="ops",
            span=6,
            description="Stage failures, shadow and reload errors the service absorbed.",
        ),
    )
    latency = (
        _graph(
            "Latency p50 / p99 by arm",
            Query(_quantile(0.5, hist, "arm", rec), "p50 {{arm}}"),
            Query(_quantile(0.99, hist, "arm", rec), "p99 {{arm}}"),
            unit="s",
        ),
        _graph(
            "Latency p99 by stage and arm",
            Query(_quantile(0.99, "replayrec_serve_stage_seconds", "stage, arm", ARM), "{{stage}} · {{arm}}"),
            unit="s",
        ),
    )
    answers = (
        _graph(
            "Degraded answers by reason (share of requests)",
            Query(degraded, "{{reason}}"),
            unit="percentunit",
            span=8,
        ),
        _graph("Result cache hit ratio", Query(cache, "hit ratio"), unit="percentunit", span=8),
        _graph(
            "Shadow arm overlap@k (median)",
            Query(_quantile(0.5, "replayrec_serve_shadow_overlap", "arm", ARM), "{{arm}}"),
            unit="percentunit",
            span=8,
            description="Overlap of the shadow arm's list with the list shown.",
        ),
    )
    events = (
        _graph(
            "Events ingested by outcome",
            Query(_rate("replayrec_serve_events_total", "outcome"), "{{outcome}}"),
            unit="ops",
        ),
        _bars(
            "Model swaps by outcome",
            Query(_increase("replayrec_serve_model_swaps_total", "outcome"), "{{outcome}}"),
        ),
    )
    return BoardSpec(
        "replayrec-system",
        "replayrec · system",
        "The recommendation service: traffic, latency, errors and degraded answers per arm, the result "
        "cache, events ingested, model swaps.",
        (
            ("Traffic and errors", traffic),
            ("Latency", latency),
            ("Answers", answers),
            ("Events and models", events),
        ),
        arms_from=req,
        swaps=True,
    )


def _stream() -> BoardSpec:
    def quantile(q: float, histogram: str) -> Query:
        return Query(_quantile(q, histogram), f"p{round(q * 100)}")

    throughput = (
        _graph(
            "Events applied / s",
            Query(_rate("replayrec_stream_events_applied_total"), "applied"),
            Query("max(replayrec_stream_events_per_second)", "last batch"),
            unit="ops",
            span=8,
        ),
        _graph(
            "Input rows / s",
            Query(_rate("replayrec_stream_input_rows_total"), "rows read"),
            Query(_rate("replayrec_bus_events_produced_total", "source"), "produced ({{source}})"),
            unit="ops",
            span=8,
        ),
        _graph("Consumer lag", Query("max(replayrec_stream_lag_events)", "records not applied"), span=8),
    )
    latency = (
        _graph(
            "Freshness p50 / p95",
            quantile(0.5, "replayrec_stream_freshness_seconds"),
            quantile(0.95, "replayrec_stream_freshness_seconds"),
            unit="s",
            description="Event produced → visible in the online store.",
        ),
        _graph("Batch duration p95", quantile(0.95, "replayrec_stream_batch_seconds"), unit="s"),
    )
    failures = (
        _bars(
            "Dead letters by reason",
            Query(_increase("replayrec_stream_dead_letters_total", "reason"), "stream · {{reason}}"),
            Query(_increase("replayrec_bus_dead_letters_total", "reason"), "bus · {{reason}}"),
        ),
        _bars(
            "Online store rebuilds", Query(_increase("replayrec_stream_rebuilds_total"), "rebuilds"), span=6
        ),
        _bars("Broker outages", Query(_increase("replayrec_bus_broker_outages_total"), "outages"), span=6),
    )
    replay = (
        _stat(
            "Replay clock",
            Query("max(replayrec_replay_clock_seconds) * 1000", "clock"),
            "dateTimeAsIso",
            description="The simulated time the replay has reached.",
        ),
        _graph(
            "Replay position",
            Query("max(replayrec_replay_position)", "handled"),
            Query("max(replayrec_replay_events)", "in range"),
            span=6,
        ),
        _graph("Replay lag", Query("max(replayrec_replay_lag_seconds)", "behind schedule"), unit="s", span=6),
        _graph(
            "Replay speed",
            Query("max(replayrec_replay_speed)", "speed"),
            Query("max(replayrec_replay_paused)", "paused"),
            span=6,
            description="Simulated seconds per wall second (0: as fast as possible); paused: 1 while paused.",
        ),
    )
    return BoardSpec(
        "replayrec-stream",
        "replayrec · stream",
        "The streaming job and the bus: events applied, freshness, lag, batches, dead letters, rebuilds, and "
        "the replay.",
        (
            ("Throughput", throughput),
            ("Freshness and batches", latency),
            ("Failures", failures),
            ("Replay", replay),
        ),
    )


def _models() -> BoardSpec:
    def online(metric: str) -> Query:
        return Query(f'replayrec_online_metric{{{ARM}, metric="{metric}"}}', "{{arm}} (monitor window)")

    def live(counter: str, part: str, whole: str) -> Query:
        w = QUALITY_WINDOW
        ratio = f"{_rate(counter, 'arm', f'{ARM}, {part}', w)} / {_rate(counter, 'arm', whole, w)}"
        return Query(ratio, f"{{{{arm}}}} (service, {w})")

    hits, feedback = "replayrec_serve_online_hits_total", "replayrec_serve_feedback_total"
    quality = (
        _graph(
            "Online HR@10 by arm", online("hr@10"), live(hits, 'hit="yes"', ARM), unit="percentunit", span=8
        ),
        _graph(
            "Online CTR by arm",
            online("ctr"),
            live(feedback, 'kind="click"', f'{ARM}, kind="impression"'),
            unit="percentunit",
            span=8,
        ),
        _graph(
            "Offline HR@10 by arm",
            Query(f'replayrec_offline_metric{{{ARM}, metric="hr@10"}}', "{{arm}}"),
            unit="percentunit",
            span=8,
            description="The offline evaluation of the version each arm serves.",
        ),
    )
    degradation = (
        _graph(
            "Online / offline ratio by arm",
            Query(f"replayrec_degradation_ratio{{{ARM}}}", "{{arm}} · {{metric}}"),
            Query("max(replayrec_degradation_threshold)", "alert threshold", threshold=True),
            description="1: the arm performs online as it was evaluated offline.",
        ),
        _graph(
            "Samples behind the online numbers",
            Query(f"replayrec_online_samples{{{ARM}}}", "{{arm}} · {{metric}}"),
            description="Events (HR@10) or impressions (CTR) in the monitor's window.",
        ),
    )
    versions = (
        _table(
            "Versions each arm serves",
            f"max by (arm, plugin, version) (replayrec_serve_model_info{{{ARM}}}) == 1",
        ),
        _table("Registry aliases", "max by (plugin, alias, version) (replayrec_model_info) == 1"),
    )
    drift = (
        *(
            _graph(
                f"Drift: {label} by feature",
                Query(f'replayrec_drift_score{{score="{score}"}}', "{{feature}}"),
                Query(
                    f'max(replayrec_drift_threshold{{score="{score}"}})', "alert threshold", threshold=True
                ),
                span=8,
                description="The live window against the training window of the version at prod.",
            )
            for score, label in (("psi", "PSI"), ("js", "Jensen-Shannon"))
        ),
        _graph(
            "Unseen items / users (share of the live window)",
            Query("replayrec_drift_unseen_share", "{{kind}}"),
            Query("replayrec_drift_unseen_threshold", "alert threshold ({{kind}})", threshold=True),
            unit="percentunit",
            span=8,
        ),
    )
    retraining = (
        _bars(
            "Retrains by trigger and outcome",
            Query(
                _increase("replayrec_monitor_retrains_total", "plugin, trigger, outcome"),
                "{{plugin}} · {{trigger}} · {{outcome}}",
            ),
        ),
        _stat(
            "Last retrain",
            Query("max by (plugin) (replayrec_monitor_last_retrain_timestamp_seconds) * 1000", "{{plugin}}"),
            "dateTimeFromNow",
        ),
        _stat(
            "Last check",
            Query("max(replayrec_monitor_last_check_timestamp_seconds) * 1000", "last check"),
            "dateTimeFromNow",
            description="When the monitor last compared the windows.",
        ),
    )
    return BoardSpec(
        "replayrec-models",
        "replayrec · models",
        "Model quality per arm, online and offline; the versions served and registered; data drift; "
        "retraining.",
        (
            ("Online quality", quality),
            ("Degradation", degradation),
            ("Versions", versions),
            ("Drift", drift),
            ("Retraining", retraining),
        ),
        arms_from="replayrec_serve_model_info",
        swaps=True,
    )


def boards() -> tuple[BoardSpec, ...]:
    return (_system(), _stream(), _models())
