"""``replayrec ab compare``: two cascade configurations (a plugin swap) on the same users, with paired CIs."""

from __future__ import annotations

from pathlib import Path

import click

from replayrec.application import AB_METRICS, EvalOptions, compare_arms
from replayrec.cli._common import (
    bootstrap_option,
    dataset_option,
    echo_json,
    is_tty,
    json_option,
    out_option,
    protocol_option,
    settings_of,
)
from replayrec.errors import ConfigError
from replayrec.evaluation import markdown_table

__all__ = ["ab"]


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
@dataset_option
@protocol_option
@click.option(
    "--split", "split_name", type=click.Choice(["test", "valid"]), default="test", show_default=True
)
@bootstrap_option
@json_option
@out_option
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
    if len(arms) != 2:
        raise ConfigError(f"ab compare needs exactly two --arm files, got {len(arms)}")
    opts = EvalOptions(protocol=protocol, split=split_name, ks=(10,), n_boot=n_boot, progress=is_tty())
    rep = compare_arms(settings_of(ctx), (arms[0], arms[1]), name, opts, out)
    if as_json:
        echo_json(rep.to_dict())
        return
    click.echo(markdown_table(rep.arms, columns=AB_METRICS))
    click.echo(f"\nB over A on the same {rep.users:,} users (95% paired bootstrap):")
    click.echo(
        "| metric | A | B | B − A | relative | 95% CI | significant |\n|---|---:|---:|---:|---:|---|---|"
    )
    for m, d in rep.b_over_a.items():
        a, b = rep.means[m]
        click.echo(
            f"| {m} | {a:.4f} | {b:.4f} | {d['delta']:+.4f} | {d['lift']:+.1%} | "
            f"[{d['ci'][0]:+.1%}, {d['ci'][1]:+.1%}] | {'yes' if d['significant'] else 'no'} |"
        )
