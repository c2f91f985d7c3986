"""What a dashboard must hold before it is committed: the metric names its PromQL reads (each one exported
by a registry or recorded by a rule), and the structure Grafana needs (unique ids, titles, panels inside the
24-column grid and apart, the ``${datasource}`` variable, targets with an expression and a unique refId).

The checks read the dashboard JSON (what Grafana loads), not the SDK's objects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from replayrec.bus import BusMetrics
from replayrec.monitoring._metrics import MonitorMetrics
from replayrec.stream import StreamMetrics

__all__ = [
    "DATASOURCE_VARIABLE",
    "known_metric_names",
    "lint_dashboards",
    "promql_metric_names",
    "promql_variables",
    "recorded_metric_names",
    "registry_metric_names",
]

#: the data source every panel and query variable reads through
DATASOURCE_VARIABLE = "${datasource}"
GRID_COLUMNS = 24

# -- PromQL: what is left once strings, label matchers, ranges and grouping clauses are cut out
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\s+-?[\w.]+", re.IGNORECASE)
_AT = re.compile(r"@\s*(?:[\d.]+|start\s*\(\s*\)|end\s*\(\s*\))")
_TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_:][\w:]*)(?P<call>\s*\()?"
)
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
     "atan2", "inf", "nan"}
)  # fmt: skip
# Grafana's query-variable functions whose first argument is a metric (or a series selector)
_VARIABLE_QUERY = re.compile(r"^\s*(label_values|query_result)\s*\((.*)\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression reads. Skipped: function and aggregation
    names (a name followed by ``(``), label names inside ``{…}`` and ``by / without / on / ignoring /
    group_left / group_right (…)``, the binary keywords, durations (``[5m]``, ``offset 1h``), numbers, string
    literals and Grafana variables (``$arm``, ``${arm}``, ``$__rate_interval``). A selector naming its metric
    only as ``{__name__="…"}`` is not seen."""
    text = _STRING.sub(" ", expr)
    text = _VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _AT.sub(" ", text)
    names: set[str] = set()
    for m in _TOKEN.finditer(text):
        name = m.group("name")
        if name is None or m.group("call") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def promql_variables(expr: str) -> set[str]:
    """The Grafana variables an expression uses (``$arm``, ``${arm}``, ``${arm:regex}``, ``[[arm]]``)."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def registry_metric_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry exposes, children or not: a counter ``x`` as ``x_total``, a histogram
    as ``x_bucket`` / ``x_sum`` / ``x_count`` (prometheus_client's exposition), a gauge as itself."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def recorded_metric_names(rules: Path) -> set[str]:
    """The series a Prometheus rule file records (``groups[].rules[].record``); none when it is absent."""
    if not rules.is_file():
        return set()
    doc = yaml.safe_load(rules.read_text()) or {}
    return {
        str(rule["record"])
        for group in doc.get("groups") or []
        for rule in group.get("rules") or []
        if isinstance(rule, dict) and rule.get("record")
    }


def known_metric_names(rules: Path | None = None) -> set[str]:
    """The names core's own registries export (the stream job's, the bus's, the monitor's), plus those
    ``rules`` records. The service's ``replayrec_serve_*`` names live above core: callers add them."""
    names: set[str] = set()
    for metrics in (StreamMetrics(), BusMetrics(), MonitorMetrics()):
        names |= registry_metric_names(metrics.registry)
    return names | (recorded_metric_names(rules) if rules is not None else set())


def lint_dashboards(dashboards: Iterable[Mapping[str, Any]], known: Set[str]) -> list[str]:
    """Problems of a set of dashboards (empty: none): uid and title unique across them, then each one's."""
    problems: list[str] = []
    uids: dict[str, int] = {}
    titles: dict[str, int] = {}
    for dash in dashboards:
        uid, title = str(dash.get("uid") or ""), str(dash.get("title") or "")
        uids[uid] = uids.get(uid, 0) + 1
        titles[title] = titles.get(title, 0) + 1
        problems += _dashboard_problems(dash, known)
    problems += [f"uid {u!r} is used by {n} dashboards" for u, n in sorted(uids.items()) if n > 1 and u]
    problems += [f"title {t!r} is used by {n} dashboards" for t, n in sorted(titles.items()) if n > 1 and t]
    return problems


def _dashboard_problems(dash: Mapping[str, Any], known: Set[str]) -> list[str]:
    uid = str(dash.get("uid") or "")
    where = f"dashboard {uid or '<no uid>'}"
    problems = [f"{where}: no {key}" for key in ("uid", "title") if not dash.get(key)]
    variables = (dash.get("templating") or {}).get("list") or []
    defined = {str(v.get("name")) for v in variables}
    if not any(v.get("name") == "datasource" and v.get("type") == "datasource" for v in variables):
        problems.append(f"{where}: no `datasource` template variable of type datasource")
    problems += [f"{where}: {p}" for v in variables for p in _variable_problems(v, defined, known)]
    top = list(dash.get("panels") or [])
    everything = list(_flatten(top))
    problems += [f"{where}: {p}" for p in _id_problems(everything)]
    problems += [f"{where}: {p}" for p in _grid_problems(top)]
    for row in top:
        if row.get("type") == "row" and row.get("collapsed"):
            problems += [f"{where}: {p}" for p in _grid_problems(row.get("panels") or [])]
    for panel in everything:
        if panel.get("type") != "row":
            problems += [f"{where}: {_name(panel)}: {p}" for p in _panel_problems(panel, defined, known)]
    for note in (dash.get("annotations") or {}).get("list") or []:
        if note.get("expr"):
            problems += [
                f"{where}: annotation {note.get('name')!r}: {p}"
                for p in _expr_problems(str(note["expr"]), defined, known)
            ]
    return problems


def _flatten(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for p in panels:
        yield p
        if p.get("type") == "row":
            yield from p.get("panels") or []


def _name(panel: Mapping[str, Any]) -> str:
    return f"panel {panel.get('id')} {panel.get('title')!r}"


def _id_problems(panels: list[Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    seen: dict[Any, str] = {}
    for p in panels:
        pid = p.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            problems.append(f"{_name(p)}: no id (a positive integer)")
        elif pid in seen:
            problems.append(f"{_name(p)}: duplicate id (also {seen[pid]})")
        else:
            seen[pid] = _name(p)
    return problems


def _grid_problems(panels: list[Mapping[str, Any]]) -> list[str]:
    """Each panel inside the grid; no two (rows included) covering the same cell."""
    problems: list[str] = []
    placed: list[tuple[Mapping[str, Any], tuple[int, int, int, int]]] = []
    for p in panels:
        pos = p.get("gridPos") or {}
        x, y, w, h = (pos.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)):
            problems.append(f"{_name(p)}: gridPos needs integers x, y, w and h (has {dict(pos)})")
            continue
        box = (int(x), int(y), int(w), int(h))  # type: ignore[arg-type]
        if box[0] < 0 or box[1] < 0 or box[2] < 1 or box[3] < 1 or box[0] + box[2] > GRID_COLUMNS:
            problems.append(f"{_name(p)}: gridPos {dict(pos)} is outside the {GRID_COLUMNS}-column grid")
            continue
        for other, (ox, oy, ow, oh) in placed:
            if box[0] < ox + ow and ox < box[0] + box[2] and box[1] < oy + oh and oy < box[1] + box[3]:
                problems.append(f"{_name(p)}: overlaps {_name(other)} (gridPos {dict(pos)})")
        placed.append((p, box))
    return problems


def _panel_problems(panel: Mapping[str, Any], defined: Set[str], known: Set[str]) -> list[str]:
    problems = [] if panel.get("title") else ["no title"]
    if not _is_ours(panel.get("datasource")):
        problems.append(f"datasource {panel.get('datasource')!r} is not the {DATASOURCE_VARIABLE} variable")
    targets = list(panel.get("targets") or [])
    if not any(str(t.get("expr") or "").strip() for t in targets):
        problems.append("no target with an expression")
    refs: dict[str, int] = {}
    for t in targets:
        ref = str(t.get("refId") or "")
        refs[ref] = refs.get(ref, 0) + 1
        if "datasource" in t and not _is_ours(t["datasource"]):
            problems.append(f"target {ref!r}: datasource {t['datasource']!r} is not {DATASOURCE_VARIABLE}")
        problems += [f"target {ref!r}: {p}" for p in _expr_problems(str(t.get("expr") or ""), defined, known)]
    problems += ["a target without a refId" for _ in range(refs.pop("", 0))]
    problems += [f"refId {r!r} is used by {n} targets" for r, n in sorted(refs.items()) if n > 1]
    return problems


def _variable_problems(var: Mapping[str, Any], defined: Set[str], known: Set[str]) -> list[str]:
    if var.get("type") != "query":
        return []
    name = f"variable {var.get('name')!r}"
    problems = [] if _is_ours(var.get("datasource")) else [f"{name}: datasource is not {DATASOURCE_VARIABLE}"]
    query = var.get("query")
    text = str(query.get("query") or "") if isinstance(query, Mapping) else str(query or "")
    m = _VARIABLE_QUERY.match(text)
    if m is None:
        return [*problems, f"{name}: query {text!r} is not label_values(…) or query_result(…)"]
    func, args = m.groups()
    # label_values([selector,] label): the label, the last argument, is no metric
    selector = args if func == "query_result" else args.rsplit(",", 1)[0] if "," in args else ""
    return problems + [f"{name}: {p}" for p in _expr_problems(selector, defined, known)]


def _expr_problems(expr: str, defined: Set[str], known: Set[str]) -> list[str]:
    problems = [f"unknown metric {n!r}" for n in sorted(promql_metric_names(expr) - known)]
    return problems + [
        f"undefined variable ${v}" for v in sorted(promql_variables(expr) - defined) if not v.startswith("__")
    ]


def _is_ours(ref: Any) -> bool:
    uid = ref.get("uid") if isinstance(ref, Mapping) else ref
    return uid in (DATASOURCE_VARIABLE, "$datasource")
