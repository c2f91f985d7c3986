"""``replayrec report stages``: every stage of the cascade against the baselines, on the same test users;
``replayrec report ablation``: which of the reranker's inputs carry its gain."""

from __future__ import annotations

from pathlib import Path

import click

from replayrec.application import (
    DEFAULT_ABLATION,
    SLICE_NOTE,
    AblationRequest,
    StagesRequest,
    ablation_report,
    stages_report,
)
from replayrec.cli._common import (
    bootstrap_option,
    dataset_option,
    echo_json,
    is_tty,
    json_option,
    protocol_option,
    report_files,
    settings_of,
)

__all__ = ["ablation_cmd", "stages_cmd"]


@click.command("stages")
@dataset_option
@protocol_option
@click.option(
    "--recall",
    "recall",
    help="trained recall plugin the ranker is trained behind; default: the training profile's "
    "`<rank>: {recall: …}` (one stage or several channels), else the rankers' default three channels",
)
@click.option("--rank", "rank", default="din", show_default=True, help="trained rank plugin")
@click.option("--rank-model", help="rank model (artifact or PLUGIN@alias); default: RANK@latest")
@click.option(
    "--rerank", "rerank", default="ranknet", show_default=True, help="trained rerank plugin ('' for none)"
)
@click.option(
    "--rerank-model",
    help="rerank model (artifact or PLUGIN@alias) over exactly the rank model; default: the newest such",
)
@click.option(
    "--train-missing/--no-train-missing",
    default=True,
    show_default=True,
    help="train models that are missing",
)
@click.option(
    "--train-config",
    "train_config",
    type=click.Path(path_type=Path),
    help="YAML {plugin: training config} for models trained here (e.g. configs/demo.yaml, a quick profile)",
)
@click.option(
    "--unmasked/--no-unmasked",
    default=True,
    show_default=True,
    help="also evaluate every row with consumed items allowed (as published results are measured)",
)
@bootstrap_option
@json_option
@click.pass_context
def stages_cmd(
    ctx: click.Context,
    name: str | None,
    protocol: str | None,
    recall: str | None,
    rank: str,
    rank_model: str | None,
    rerank: str,
    rerank_model: str | None,
    train_missing: bool,
    train_config: Path | None,
    unmasked: bool,
    n_boot: int,
    as_json: bool,
) -> None:
    """Per-stage table on the dataset's own protocol (or --protocol; models trained on its training events,
    trained here when missing): popularity, item-CF, the recall alone (its top-K
    ordering), recall → rank over the same candidates and recall → rank → rerank over the rank stage's top
    list — every row on the same upstream models — with bootstrap CIs, each model stage's paired lift over
    the stage before it, and each row again without history masking."""
    req = StagesRequest(
        dataset=name,
        recall=recall,
        rank=rank,
        rank_model=rank_model,
        rerank=rerank,
        rerank_model=rerank_model,
        protocol=protocol,
        train_missing=train_missing,
        train_profile=train_config,
        n_boot=n_boot,
        unmasked=unmasked,
        progress=is_tty(),
    )
    rep = stages_report(settings_of(ctx), req)
    if as_json:
        echo_json(rep.rows)
        return
    click.echo(f"\n## {rep.dataset} — protocol {rep.protocol}, 95% bootstrap CI over users\n")
    click.echo(rep.markdown)
    for what, lift in rep.lifts:
        click.echo(
            f"\n{what} (same users, paired bootstrap): "
            + ", ".join(f"{m} {v[0]:+.1%} [{v[1]:+.1%}, {v[2]:+.1%}]" for m, v in lift.items())
        )
    if rep.slices_markdown:
        click.echo(f"\nNDCG@10 per slice ({SLICE_NOTE}; every slice and item group in --json):\n")
        click.echo(rep.slices_markdown)
    beats = rep.rows["recall+rank+rerank" if rerank else "recall+rank"]["beats_baselines"]
    click.echo(
        "\nthe full cascade above recent popularity and item-CF (paired 95% CI above 0): "
        + ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in beats.items())
    )
    click.echo(
        f"gauc: popularity / item-CF over the catalogue; the cascade rows within the top-{rep.depth} list"
    )
    if unmasked:
        click.echo(
            "'consumed not masked' rows: already-consumed items may be recommended (the published protocol)"
        )
    click.echo(f"report: {report_files(rep.report)}")


@click.command("ablation")
@dataset_option
@protocol_option
@click.option("--rank", "rank", default="din", show_default=True, help="trained rank plugin")
@click.option("--rank-model", help="rank model (artifact or PLUGIN@alias); default: RANK@latest")
@click.option(
    "--rerank-model",
    help="the full reranker (artifact or PLUGIN@alias) over exactly the rank model; default: the newest such",
)
@click.option(
    "--spec",
    type=click.Path(path_type=Path),
    default=DEFAULT_ABLATION,
    show_default="RankNet's feature groups and the request-day probe",
    help="YAML: the reranker, its train / serve option keys, feature groups, probes",
)
@click.option(
    "--train-missing/--no-train-missing",
    default=True,
    show_default=True,
    help="train the full model, its upstream stages and the retrained variants when missing",
)
@click.option(
    "--train-config",
    "train_config",
    type=click.Path(path_type=Path),
    help="YAML {plugin: training config} for models trained here (e.g. configs/demo.yaml)",
)
@bootstrap_option
@json_option
@click.pass_context
def ablation_cmd(
    ctx: click.Context,
    name: str | None,
    protocol: str | None,
    rank: str,
    rank_model: str | None,
    rerank_model: str | None,
    spec: Path,
    train_missing: bool,
    train_config: Path | None,
    n_boot: int,
    as_json: bool,
) -> None:
    """Which of the reranker's inputs carry its gain: the full model, the order it receives, the model
    retrained without each feature group, each group shuffled among a list's candidates at test time, and
    the probes (the request a day after the newest history event) — on the same users, each with a paired
    CI against the full model. Variants are trained under <state>/ablation."""
    req = AblationRequest(
        dataset=name,
        protocol=protocol,
        rank=rank,
        rank_model=rank_model,
        rerank_model=rerank_model,
        spec=spec,
        train_missing=train_missing,
        train_profile=train_config,
        n_boot=n_boot,
        progress=is_tty(),
    )
    rep = ablation_report(settings_of(ctx), req)
    if as_json:
        echo_json(rep.rows)
        return
    click.echo(f"\n## ablation {rep.dataset} — protocol {rep.protocol}, full model {rep.model}\n")
    click.echo(rep.markdown)
    click.echo("\nagainst the full model (same users, paired bootstrap):")
    for row in rep.rows.values():
        for key, what in (("lift_over_full", "vs full"), ("lift_over_input", "vs its input order")):
            if key in row:
                click.echo(
                    f"  {row['label']} {what}: "
                    + ", ".join(f"{m} {v[0]:+.1%} [{v[1]:+.1%}, {v[2]:+.1%}]" for m, v in row[key].items())
                )
    click.echo(f"report: {report_files(rep.report)}")
