"""``replayrec evaluate``, ``replayrec recommend``, ``replayrec report baselines``."""

from __future__ import annotations

from pathlib import Path

import click

from replayrec.application import EvalOptions, baselines_report, recommend_for_user, run_evaluate
from replayrec.cli._common import (
    bootstrap_option,
    dataset_option,
    echo_json,
    is_tty,
    json_option,
    parse_ks,
    parse_sets,
    protocol_option,
    report_files,
    sets_option,
    settings_of,
)
from replayrec.data import DATASETS
from replayrec.evaluation import DEFAULT_KS

__all__ = ["evaluate_cmd", "recommend_cmd", "report"]


@click.command("evaluate")
@dataset_option
@protocol_option
@click.option(
    "--plugin", help="plugin to evaluate: a recall plugin, or a trained rank/rerank plugin in its cascade"
)
@sets_option
@click.option(
    "--config", "cascade_path", type=click.Path(path_type=Path), help="evaluate a whole cascade YAML"
)
@click.option(
    "--split", "split_name", type=click.Choice(["test", "valid"]), default="test", show_default=True
)
@click.option("--ks", default=",".join(map(str, DEFAULT_KS)), show_default=True)
@click.option(
    "--history-len", type=int, help="history items given to the model (default 50; all for 'given')"
)
@click.option("--no-mask", is_flag=True, help="allow already-consumed items in the ranking")
@bootstrap_option
@click.option("--holdout", type=float, default=0.1, show_default=True, help="temporal: held-out fraction")
@click.option(
    "--model", "model", help="trained model: an artifact directory or <plugin>@<alias> (e.g. din@latest)"
)
@json_option
@click.pass_context
def evaluate_cmd(
    ctx: click.Context,
    name: str | None,
    protocol: str | None,
    plugin: str | None,
    sets: tuple[str, ...],
    cascade_path: Path | None,
    split_name: str,
    ks: str,
    history_len: int | None,
    no_mask: bool,
    n_boot: int,
    holdout: float,
    model: str | None,
    as_json: bool,
) -> None:
    """Evaluate a recall plugin (exact full ranking), a trained rank/rerank model in its cascade, or a
    cascade YAML, on a dataset and protocol."""
    opts = EvalOptions(
        protocol=protocol,
        split=split_name,
        ks=parse_ks(ks),
        history_len=history_len,
        mask=not no_mask,
        n_boot=n_boot,
        holdout=holdout,
        progress=is_tty(),
    )
    outcome = run_evaluate(
        settings_of(ctx),
        name,
        plugin=plugin,
        options=parse_sets(sets),
        model=model,
        cascade=cascade_path,
        opts=opts,
    )
    if as_json:
        echo_json(outcome.result)
    else:
        click.echo(outcome.table)
        click.echo(f"{outcome.users:,} users, {outcome.seconds:.1f}s; report: {report_files(outcome.report)}")


@click.command("recommend")
@click.option("--user", "user", required=True, help="the user's id as in the dataset (raw id)")
@dataset_option
@click.option(
    "--config", "cascade_path", type=click.Path(path_type=Path), help="cascade YAML (default: built-in)"
)
@click.option("-k", "--k", "k", type=int, default=10, show_default=True)
@click.option(
    "--at", "at", type=int, help="request time, Unix seconds (default: after the user's last event)"
)
@click.option("--explain", is_flag=True, help="each stage's score and the reasons (model, business rules)")
@json_option
@click.pass_context
def recommend_cmd(
    ctx: click.Context,
    user: str,
    name: str | None,
    cascade_path: Path | None,
    k: int,
    at: int | None,
    explain: bool,
    as_json: bool,
) -> None:
    """Run the configured cascade offline for one user, fitted on all of the dataset's events."""
    recs = recommend_for_user(settings_of(ctx), user, name, cascade_path, k, at)
    if as_json:
        echo_json(recs.to_dict())
        return
    click.echo(f"user {user} ({recs.history} past events, last: {recs.last_title or '-'})")
    for r in recs.rows:
        click.echo(f"{r['rank']:>3}. {r['title'][:70]:<70} score {r['score']:.4f}  [{r['item']}]")
        if explain:
            click.echo("       " + " · ".join(f"{s} {v:.4f}" for s, v in r["scores"].items()))
            for why in r["reasons"]:
                click.echo(f"       {why}")


@click.group()
def report() -> None:
    """Reports that combine several evaluations."""


@report.command("baselines")
@click.option(
    "--dataset",
    "names",
    multiple=True,
    type=click.Choice(sorted(DATASETS)),
    help="default: the default dataset, plus amazon-book-kgat when its files are present",
)
@bootstrap_option
@json_option
@click.pass_context
def baselines_cmd(ctx: click.Context, names: tuple[str, ...], n_boot: int, as_json: bool) -> None:
    """Evaluate the baselines on each dataset's own protocol, beside the published results."""
    tables = baselines_report(settings_of(ctx), names, n_boot, progress=is_tty())
    if as_json:
        echo_json({t.dataset: t.rows for t in tables})
        return
    for t in tables:
        click.echo(f"\n## {t.dataset} — protocol {t.protocol}, 95% bootstrap CI over users\n")
        click.echo(t.markdown)
        click.echo(f"\nreport: {report_files(t.report)}")
