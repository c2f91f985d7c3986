"""Evaluation reports: JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["markdown_table", "write_report"]

DEFAULT_COLUMNS = ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "recall@200", "mrr", "gauc")


def _fmt(row: Mapping[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None:
        return "–"
    ci = row.get("ci", {}).get(key)
    if ci and ci[0] is not None:
        return f"{v:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"
    return f"{v:.4f}"


def markdown_table(
    rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str] = DEFAULT_COLUMNS, ci: bool = True
) -> str:
    """One row per run (name → result dict), metric columns with 95% bootstrap intervals."""
    cols = [c for c in columns if any(c in r for r in rows.values())]
    lines = ["| run | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [_fmt(r if ci else {k: v for k, v in r.items() if k != "ci"}, c) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _chart(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [
        c for c in columns if c not in ("gauc", "auc") and any(r.get(c) is not None for r in rows.values())
    ]
    names = list(rows)
    x = np.arange(len(cols))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(cols)), 4), dpi=110)
    for i, name in enumerate(names):
        r = rows[name]
        vals: list[float] = [float(r[c]) if r.get(c) is not None else np.nan for c in cols]
        ci = r.get("ci", {})
        bounds = [ci.get(c) or [v, v] for c, v in zip(cols, vals, strict=True)]
        err = [
            [max(0.0, v - lo) if lo is not None else 0.0 for v, (lo, _) in zip(vals, bounds, strict=True)],
            [max(0.0, hi - v) if hi is not None else 0.0 for v, (_, hi) in zip(vals, bounds, strict=True)],
        ]
        err = np.nan_to_num(np.asarray(err, dtype=float)).tolist()
        ax.bar(x + i * width, vals, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, cols)
    ax.set_ylabel("metric (95% bootstrap CI)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    rows: Mapping[str, Mapping[str, Any]],
    directory: Path,
    stem: str,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``directory`` (the chart only where
    matplotlib is installed: the ``[reports]`` extra, part of ``[train]``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / f"{stem}.json",
        "md": directory / f"{stem}.md",
        "png": directory / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(rows, indent=2, sort_keys=True))
    head = f"# {title}\n\n" if title else ""
    paths["md"].write_text(head + markdown_table(rows, columns) + "\n")
    if importlib.util.find_spec("matplotlib") is None:
        del paths["png"]
    else:
        _chart(rows, columns, paths["png"])
    return paths
