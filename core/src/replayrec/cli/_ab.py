"""``replayrec ab compare``: two cascade configurations (a plugin swap) on the same users, with paired CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from replayrec.cli._common import echo_json, info, resolve_dataset, settings_of
from replayrec.data import DATASETS
from replayrec.errors import ConfigError
from replayrec.evaluation import PROTOCOLS, markdown_table, paired_lift, write_report

__all__ = ["ab"]

_METRICS = ("ndcg@10", "hr@10", "mrr")


@click.group()
def ab() -> None:
    """A/B comparisons of cascade configurations."""


@ab.command("compare")
@click.option(
    "--arm",
    "arms",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="cascade YAML (give exactly two; models as <plugin>@<alias>)",
)
@click.option("--dataset", "name", type=click.Choice(sorted(DATASETS)))
@click.option("--protocol", type=click.Choice(PROTOCOLS))
@click.option(
    "--split", "split_name", type=click.Choice(["test", "valid"]), default="test", show_default=True
)
@click.option("--bootstrap", "n_boot", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), help="also write the JSON here")
@click.pass_context
def compare_cmd(
    ctx: click.Context,
    arms: tuple[Path, ...],
    name: str | None,
    protocol: str | None,
    split_name: str,
    n_boot: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Evaluate arm A and arm B on the same users; B's relative difference over A with 95% paired
    bootstrap intervals (users resampled together, so the pairing is kept)."""
    from replayrec.cli._eval import run_evaluation

    if len(arms) != 2:
        raise ConfigError(f"ab compare needs exactly two --arm files, got {len(arms)}")
    for a in arms:
        if not a.is_file():
            raise ConfigError(f"arm {a} does not exist")
    settings = settings_of(ctx)
    ds = resolve_dataset(settings, name)
    results = []
    for a in arms:
        info(f"arm {a}: evaluating")
        results.append(
            run_evaluation(
                settings,
                ds,
                protocol,
                None,
                {},
                cascade_path=a,
                split_name=split_name,
                ks=(10,),
                n_boot=n_boot,
            )
        )
    base, other = results
    if not np.array_equal(base.users, other.users):
        raise ConfigError("the arms were evaluated on different users")  # same split: cannot happen
    rows: dict[str, dict[str, Any]] = {}
    for label, a, res in zip(("A", "B"), arms, results, strict=True):
        d = res.to_dict()
        rows[f"{label}: {a.name}"] = {m: d.get(m) for m in _METRICS} | {"ci": d["ci"]}
    diff: dict[str, Any] = {}
    for m in _METRICS:
        lift, lo, hi = paired_lift(base.per_user[m], other.per_user[m], n_boot=n_boot, seed=settings.seed)
        delta = float(np.nanmean(other.per_user[m]) - np.nanmean(base.per_user[m]))
        diff[m] = {"delta": delta, "lift": lift, "ci": [lo, hi], "significant": bool(lo > 0 or hi < 0)}
    report = {
        "dataset": ds.name,
        "split": split_name,
        "users": int(base.n_users),
        "arms": rows,
        "b_over_a": diff,
    }
    write_report(rows, settings.reports_dir, f"ab-{ds.name}-{arms[0].stem}-vs-{arms[1].stem}")
    if out is not None:
        import json

        out.write_text(json.dumps(report, indent=2))
    if as_json:
        echo_json(report)
        return
    click.echo(markdown_table(rows, columns=_METRICS))
    click.echo(f"\nB over A on the same {base.n_users:,} users (95% paired bootstrap):")
    click.echo(
        "| metric | A | B | B − A | relative | 95% CI | significant |\n|---|---:|---:|---:|---:|---|---|"
    )
    for m, d in diff.items():
        click.echo(
            f"| {m} | {np.nanmean(base.per_user[m]):.4f} | {np.nanmean(other.per_user[m]):.4f} | "
            f"{d['delta']:+.4f} | {d['lift']:+.1%} | [{d['ci'][0]:+.1%}, {d['ci'][1]:+.1%}] | "
            f"{'yes' if d['significant'] else 'no'} |"
        )
