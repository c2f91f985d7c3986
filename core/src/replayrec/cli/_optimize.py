"""``replayrec optimize`` and ``replayrec bench variants``."""

from __future__ import annotations

import click

from replayrec.application import (
    VARIANTS,
    OptimizeRequest,
    VariantsRequest,
    bench_variants,
    optimize_model,
    variants_table,
)
from replayrec.cli._common import dataset_option, echo_json, json_option, settings_of, tracking_option
from replayrec.training import METHODS

__all__ = ["bench_variants_cmd", "optimize_cmd"]


@click.command("optimize")
@click.argument("plugin")
@click.option(
    "--model", "model", required=True, help="the trained model: an artifact directory or PLUGIN@ALIAS"
)
@click.option("--method", type=click.Choice(METHODS), required=True, help="fp16 tables, ONNX graph, or INT8")
@click.option(
    "--bits",
    type=click.IntRange(2, 8),
    default=8,
    show_default=True,
    help="int8: the weight grid (fewer bits: a coarser grid stored as int8, to study accuracy loss)",
)
@dataset_option
@tracking_option
@click.option("--no-register", is_flag=True, help="write the artifact only, no registry version")
@json_option
@click.pass_context
def optimize_cmd(
    ctx: click.Context,
    plugin: str,
    model: str,
    method: str,
    bits: int,
    name: str | None,
    tracking: str | None,
    no_register: bool,
    as_json: bool,
) -> None:
    """Turn a trained model into a serving variant (FP16 tables, an ONNX Runtime graph, dynamic INT8):
    a new artifact beside it with its lineage, registered as a new version naming its parent. Gate it with
    `replayrec pipeline run PLUGIN --model V --optimize METHOD` (accuracy loss bounded against the parent)."""
    request = OptimizeRequest(plugin, model, method, bits, name, tracking, register=not no_register)
    out = optimize_model(settings_of(ctx), request).to_dict()
    if as_json:
        echo_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k:>15}: {v}")


@click.command("variants")
@dataset_option
@click.option(
    "--model",
    default="ranknet@latest",
    show_default=True,
    help="the rank / rerank model whose trained cascade is served (PLUGIN@ALIAS or artifact)",
)
@click.option(
    "--variants",
    default=",".join(VARIANTS),
    show_default=True,
    help="comma-separated: " + ", ".join(VARIANTS),
)
@click.option(
    "--requests", type=click.IntRange(min=10), default=1000, show_default=True, help="timed requests"
)
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True, help="timed passes")
@click.option(
    "--eval-users",
    type=click.IntRange(min=50),
    default=5000,
    show_default=True,
    help="test users for NDCG / HR",
)
@click.option("--n-boot", type=click.IntRange(min=50), default=1000, show_default=True)
@json_option
@click.pass_context
def bench_variants_cmd(
    ctx: click.Context,
    name: str | None,
    model: str,
    variants: str,
    requests: int,
    repeat: int,
    eval_users: int,
    n_boot: int,
    as_json: bool,
) -> None:
    """The cascade's serving variants (numpy FP32, FP16, ONNX Runtime FP32 / INT8) on the same requests in
    one run: per-stage and end-to-end p50 / p99 on one core, QPS on two, CPU-seconds per 1,000 requests,
    memory, artifact size, NDCG@10 / HR@10 with CIs. Makes the optimised artifacts it lacks."""
    request = VariantsRequest(
        name,
        model,
        tuple(v.strip() for v in variants.split(",") if v.strip()),
        requests,
        repeat,
        eval_users,
        n_boot,
    )
    out = bench_variants(settings_of(ctx), request)
    if as_json:
        echo_json(out)
        return
    click.echo(variants_table(out))
