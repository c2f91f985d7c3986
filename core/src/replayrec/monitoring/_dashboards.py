"""Grafana dashboards as code: the system (service), stream (job, bus, replay) and models (quality, versions,
drift, retraining) dashboards, built with Grafana's foundation SDK and committed as JSON beside the
provisioning files (``deploy/monitoring/grafana/``). The committed JSON is golden: ``check_dashboards`` fails
when it differs from what the builders produce, and lints the structure and every metric name.

What the panels show is plain data (``_dashboard_panels``); only ``_build`` and ``_panel`` touch the SDK,
imported there: the serving image does not ship it."""

from __future__ import annotations

import difflib
import itertools
import json
from collections.abc import Set
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.version import Version

from replayrec.errors import ConfigError
from replayrec.monitoring._dashboard_checks import DATASOURCE_VARIABLE, known_metric_names, lint_dashboards
from replayrec.monitoring._dashboard_panels import BoardSpec, PanelSpec, boards

if TYPE_CHECKING:
    from grafana_foundation_sdk.builders import stat, table, timeseries
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.variants import Dataquery
    from grafana_foundation_sdk.models.dashboard import DataSourceRef, Panel

__all__ = [
    "DASHBOARDS_DIR",
    "DASHBOARD_UIDS",
    "DATASOURCE_UID",
    "GRAFANA_DASHBOARDS_PATH",
    "GRAFANA_VERSION",
    "WRITE_COMMAND",
    "check_dashboards",
    "dashboards",
    "dashboards_configmap",
    "render_dashboard",
    "write_dashboards",
]

DASHBOARD_UIDS = ("replayrec-system", "replayrec-stream", "replayrec-models")
#: the committed JSON, relative to the checkout
DASHBOARDS_DIR = Path("deploy/monitoring/grafana/dashboards")
#: where the provisioning file has Grafana read them
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/replayrec"
#: the provisioned Prometheus data source (also kube-prometheus-stack's): the `datasource` variable's default
DATASOURCE_UID = "prometheus"
WRITE_COMMAND = "replayrec monitor dashboards --write"
#: the Grafana the dashboards are written for (the SDK build's version, after its epoch)
GRAFANA_VERSION = (11, 6)

# the SDK's panel builders share no base with their common methods: one constrained type for all three
_P = TypeVar("_P", "table.Panel", "stat.Panel", "timeseries.Panel")


def dashboards() -> dict[str, dict[str, Any]]:
    """The three dashboards as Grafana JSON, by uid (:data:`DASHBOARD_UIDS`)."""
    _require_sdk()
    return {b.uid: _build(b) for b in boards()}


def _require_sdk() -> None:
    """The SDK's builds are versioned ``<build time>!<Grafana version>``: the newest build can be for an
    older Grafana (``pip install -U`` may bring 10.1), and each Grafana version renders other JSON."""
    try:
        found = Version(metadata.version("grafana-foundation-sdk"))
    except metadata.PackageNotFoundError:
        raise ConfigError(
            "the dashboards are built with grafana-foundation-sdk, which is not installed "
            "(pip install 'replayrec-core[monitoring]')"
        ) from None
    if found.release[:2] != GRAFANA_VERSION:
        want = ".".join(map(str, GRAFANA_VERSION))
        raise ConfigError(
            f"grafana-foundation-sdk {found} is built for another Grafana than {want}: install its {want} "
            "build (the version requirements/lock.txt pins)"
        )


def _build(board: BoardSpec) -> dict[str, Any]:
    from grafana_foundation_sdk.builders import dashboard as gd
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as md

    ds = md.DataSourceRef(type_val="prometheus", uid=DATASOURCE_VARIABLE)
    d = (
        gd.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["replayrec"])
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(md.DashboardCursorSync.CROSSHAIR)
        .annotation(
            gd.AnnotationQuery()
            .name("Annotations & Alerts")
            .built_in(1)
            .type("dashboard")
            .hide(True)
            .datasource(md.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .icon_color("rgba(0, 211, 255, 1)")
        )
        .with_variable(
            gd.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(md.VariableOption(text="Prometheus", value=DATASOURCE_UID))
        )
    )
    if board.arms_from:
        d = d.with_variable(
            gd.QueryVariable("arm")
            .label("Arm")
            .datasource(ds)
            .query(f"label_values({board.arms_from}, arm)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(md.VariableOption(text=["All"], value=["$__all"]))
            .sort(md.VariableSort.ALPHABETICAL_ASC)
            .refresh(md.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    if board.swaps:
        swaps = 'sum(increase(replayrec_serve_model_swaps_total{outcome="loaded"}[1m])) > 0'
        d = d.annotation(
            gd.AnnotationQuery()
            .name("Model loads")
            .datasource(ds)
            .enable(True)
            .expr(swaps)
            .icon_color("purple")
        )
    ids = itertools.count(1)
    for title, panels in board.rows:
        d = d.with_row(gd.Row(title).id(next(ids)))
        for spec in panels:
            d = d.with_panel(_panel(spec, next(ids), ds))
    # the SDK's objects serialise through its encoder; round-trip to plain dicts, lists and scalars
    out: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return out


def _panel(spec: PanelSpec, pid: int, ds: DataSourceRef) -> Builder[Panel]:
    from grafana_foundation_sdk.builders import common as gc
    from grafana_foundation_sdk.builders import stat, table, timeseries
    from grafana_foundation_sdk.models import common as mc
    from grafana_foundation_sdk.models import dashboard as md

    if spec.kind == "table":
        hide = {"excludeByName": {"Time": True, "Value": True}}
        return _common(table.Panel(), spec, pid, ds).with_transformation(
            md.DataTransformerConfig(id_val="organize", options=hide)
        )
    if spec.kind == "stat":
        return (
            _common(stat.Panel(), spec, pid, ds)
            .unit(spec.unit)
            .graph_mode(mc.BigValueGraphMode.NONE)
            .reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]))
        )
    p = (
        _common(timeseries.Panel(), spec, pid, ds)
        .unit(spec.unit)
        .min(0)
        .legend(
            gc.VizLegendOptions()
            .display_mode(mc.LegendDisplayMode.LIST)
            .placement(mc.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(gc.VizTooltipOptions().mode(mc.TooltipDisplayMode.MULTI).sort(mc.SortOrder.DESCENDING))
    )
    if spec.kind == "bars":
        p = p.draw_style(mc.GraphDrawStyle.BARS).fill_opacity(60)
    dashed = [
        md.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        md.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        md.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]
    for i, q in enumerate(spec.queries):
        if q.threshold:
            p = p.override_by_query(_ref(i), dashed)
    return p


def _common(p: _P, spec: PanelSpec, pid: int, ds: DataSourceRef) -> _P:
    """What every panel has: id, title, place, the data source, one query per ``spec.queries``."""
    from grafana_foundation_sdk.builders import prometheus as gp
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    targets: list[Builder[Dataquery]] = []
    for i, q in enumerate(spec.queries):
        t = gp.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(_ref(i)).datasource(ds)
        targets.append(t.format(PromQueryFormat.TABLE).instant() if spec.kind == "table" else t.range())
    p = p.id(pid).title(spec.title).datasource(ds).span(spec.span).height(spec.height).targets(targets)
    return p.description(spec.description) if spec.description else p


def _ref(i: int) -> str:
    return chr(ord("A") + i)


def render_dashboard(dashboard: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, a trailing newline (the same bytes every run)."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(folder: Path) -> list[Path]:
    """Write every dashboard to ``folder/<uid>.json``; the paths written. Files it did not write are left
    alone (``check_dashboards`` names them)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, dash in dashboards().items():
        path = folder / f"{uid}.json"
        path.write_text(render_dashboard(dash), encoding="utf-8")
        written.append(path)
    return written


def check_dashboards(folder: Path, known: Set[str] | None = None, *, rules: Path | None = None) -> list[str]:
    """Problems with the committed dashboards in ``folder`` (empty: none). Golden: each file equals what
    the builders produce, and no other JSON lies there. Lint (of the files, what Grafana loads): the
    structure, and every metric an expression reads exported by core's registries, in ``known`` (the
    service's names, from above core) or recorded by the rule file ``rules``."""
    problems: list[str] = []
    expected = {f"{uid}.json": render_dashboard(d) for uid, d in dashboards().items()}
    committed: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path}: not generated by replayrec.monitoring (a stale file): remove it")
        try:
            committed.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: not JSON ({exc})")
    for name, text in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing: run `{WRITE_COMMAND}` and commit it")
            continue
        old = path.read_text(encoding="utf-8")
        if old != text:
            lines = difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path), "generated")
            diff = "".join(itertools.islice(lines, 40)).rstrip()
            problems.append(
                f"{path}: differs from the generator: run `{WRITE_COMMAND}` and commit it\n{diff}"
            )
    names = known_metric_names(rules) | set(known or ())
    return problems + lint_dashboards(committed, names)


def dashboards_configmap(name: str = "replayrec-dashboards", namespace: str | None = None) -> dict[str, Any]:
    """The dashboards as one ConfigMap for the Grafana sidecar of kube-prometheus-stack (it loads every
    ConfigMap labelled ``grafana_dashboard: "1"``; ``grafana_folder`` names the folder where the chart sets
    ``sidecar.dashboards.folderAnnotation`` to it)."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            "grafana_dashboard": "1",
            "app.kubernetes.io/name": "replayrec",
            "app.kubernetes.io/component": "dashboards",
        },
        "annotations": {"grafana_folder": "replayrec"},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    data = {f"{uid}.json": render_dashboard(d) for uid, d in dashboards().items()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
