"""Evaluate a recall plugin (exact full ranking), a trained rank / rerank model in the cascade it was
trained behind, or a whole cascade, on a dataset's protocol split."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.application._datasets import open_dataset
from replayrec.artifacts import artifact_stage_config
from replayrec.cascade import Cascade, CascadeConfig, input_cascade, load_cascade, trained_cascade
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import (
    DEFAULT_KS,
    EvalResult,
    EvalSet,
    ListFn,
    ProtocolSplit,
    build_split,
    evaluate,
    markdown_table,
    write_report,
)
from replayrec.plugins import build_stage, kind_of, load_stage_class, parse_config
from replayrec.registry import StageResolver, resolve_model
from replayrec.stages import Candidate, Recall, Request, StageContext

__all__ = [
    "REQUEST_TIMES",
    "EvalOptions",
    "EvaluateOutcome",
    "evaluate_cascade",
    "evaluate_input_order",
    "evaluate_plugin",
    "requests_after_history",
    "run_evaluate",
]

log = logging.getLogger("replayrec.application")


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: the protocol (default: the dataset's own), the split, cut-offs, history length,
    whether consumed items are masked, bootstrap resamples, the temporal hold-out fraction."""

    protocol: str | None = None
    split: str = "test"
    ks: tuple[int, ...] = DEFAULT_KS
    history_len: int | None = None
    mask: bool = True
    n_boot: int = 1000
    holdout: float = 0.1
    progress: bool = False
    #: when each request is made: ``protocol`` (its own: the target's time under ``loo``, ``T`` under
    #: ``temporal``) or ``after_history`` (24 h after the user's newest history event: a probe of how much
    #: a model's time features rely on knowing the request's moment)
    request_time: str = "protocol"


REQUEST_TIMES = ("protocol", "after_history")
_DAY_S = 86_400


def requests_after_history(ev: EvalSet) -> EvalSet:
    """``ev`` with every request made 24 h after its newest history event (rows without history keep their
    time)."""
    lengths = np.diff(ev.hist_ptr)
    times = ev.times.copy()
    has = np.flatnonzero(lengths > 0)
    if has.size:
        newest = np.maximum.reduceat(ev.hist_times, ev.hist_ptr[has]) if ev.hist_times.size else times[has]
        times[has] = newest + _DAY_S
    return replace(ev, times=times)


@dataclass(frozen=True)
class _Prepared:
    protocol: str
    split: ProtocolSplit
    ev: EvalSet
    context: StageContext
    resolver: StageResolver


def _protocol(ds: Dataset, opts: EvalOptions) -> str:
    """The protocol ``opts`` asks for, else the dataset's own."""
    return opts.protocol or DATASETS[ds.name].protocol


def _prepare(settings: Settings, ds: Dataset, opts: EvalOptions) -> _Prepared:
    if opts.request_time not in REQUEST_TIMES:
        raise ConfigError(
            f"unknown request time {opts.request_time!r}; expected one of {', '.join(REQUEST_TIMES)}"
        )
    protocol = _protocol(ds, opts)
    split = build_split(
        ds, protocol, history_len=opts.history_len, mask_history=opts.mask, holdout=opts.holdout
    )
    ev = split.test if opts.split == "test" else split.valid
    if ev is None:
        raise ConfigError(f"protocol {protocol} has no {opts.split} split")
    if opts.request_time == "after_history":
        ev = requests_after_history(ev)
    ctx = StageContext(catalog=ds.catalog, train=split.fit, seed=settings.seed)
    return _Prepared(protocol, split, ev, ctx, StageResolver(settings, ds.name, ctx, protocol=protocol))


def _cascade_lists(cascade: Cascade) -> ListFn:
    def run(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
        return cascade.recommend_batch(requests, k=depth)

    return run


def _run(
    settings: Settings,
    ds: Dataset,
    p: _Prepared,
    evaluated: Recall | ListFn,
    label: str,
    opts: EvalOptions,
    meta: Mapping[str, Any],
    t0: float,
) -> EvalResult:
    fit_s = time.perf_counter() - t0
    log.info(
        f"{label}: fitted on {len(p.split.fit):,} events in {fit_s:.1f}s; "
        f"evaluating {len(p.ev):,} users ({p.protocol})"
    )
    res = evaluate(
        evaluated,
        p.ev,
        n_items=ds.n_items,
        history_len=p.split.history_len,
        ks=opts.ks,
        n_boot=opts.n_boot,
        seed=settings.seed,
        progress=opts.progress,
        desc=label,
    )
    res.meta = {
        "dataset": ds.name,
        "protocol": p.protocol,
        "split": opts.split,
        "plugin": label,
        **meta,
        "history_len": p.split.history_len,
        "mask_history": opts.mask,
        "request_time": opts.request_time,
        "fit_seconds": round(fit_s, 3),
    }
    return res


def evaluate_cascade(
    settings: Settings,
    ds: Dataset,
    config: CascadeConfig,
    opts: EvalOptions = EvalOptions(),
    label: str = "cascade",
) -> EvalResult:
    """Every stage fitted on the protocol's training events; the final lists evaluated (cut-offs beyond
    the final count are dropped)."""
    p = _prepare(settings, ds, opts)
    t0 = time.perf_counter()
    cascade = Cascade.build(config, p.resolver.context_for)
    depth = config.rerank.k
    opts = replace(opts, ks=tuple(k for k in opts.ks if k <= depth) or (depth,))
    return _run(settings, ds, p, _cascade_lists(cascade), label, opts, {"config": {}, "model": None}, t0)


def evaluate_plugin(
    settings: Settings,
    ds: Dataset,
    plugin: str,
    options: Mapping[str, Any] | None = None,
    *,
    model: str | Path | None = None,
    opts: EvalOptions = EvalOptions(),
) -> EvalResult:
    """A recall plugin by exact full ranking (fitted now, or a trained ``model``), or a trained rank /
    rerank ``model`` (required) in its cascade, over the whole candidate list."""
    options = dict(options or {})
    kind = kind_of(plugin)
    protocol = _protocol(ds, opts)
    path = resolve_model(model, settings, ds.name, plugin, protocol=protocol) if model is not None else None
    meta = {"config": options, "model": str(path) if path is not None else None}
    if kind != "recall":
        if path is None:
            raise ConfigError(f"{kind} plugin {plugin!r} needs --model <artifact | {plugin}@<alias>>")
        config = trained_cascade(plugin, kind, path, options)
        res = evaluate_cascade(settings, ds, config, opts, label=plugin)
        res.meta.update(meta)
        return res
    p = _prepare(settings, ds, opts)
    t0 = time.perf_counter()
    if path is not None:
        options = {**artifact_stage_config(path, ds.name, plugin), **options}
    stage = build_stage("recall", plugin, options, replace(p.context, artifact=path))
    if not isinstance(stage, Recall):
        raise ConfigError(f"{plugin} is not a recall plugin")
    return _run(settings, ds, p, stage, plugin, opts, meta, t0)


def evaluate_input_order(
    settings: Settings, ds: Dataset, plugin: str, model: str | Path, opts: EvalOptions = EvalOptions()
) -> EvalResult:
    """The order a trained rank / rerank ``model`` receives (its upstream stages, the model passing its
    input through), on the same users and at the same depth as :func:`evaluate_plugin` evaluates the
    model: the paired baseline of "does this ranker improve what it is given"."""
    kind = kind_of(plugin)
    if kind == "recall":
        raise ConfigError(f"{plugin} is a recall plugin: it receives no order to compare with")
    path = resolve_model(model, settings, ds.name, plugin, protocol=_protocol(ds, opts))
    res = evaluate_cascade(settings, ds, input_cascade(kind, path), opts, label=f"input of {plugin}")
    res.meta.update({"model": str(path), "input_of": plugin})
    return res


@dataclass(frozen=True)
class EvaluateOutcome:
    result: dict[str, Any]
    table: str
    report: dict[str, Path] = field(default_factory=dict)
    users: int = 0
    seconds: float = 0.0


def run_evaluate(
    settings: Settings,
    dataset: str | None,
    *,
    plugin: str | None = None,
    options: Mapping[str, Any] | None = None,
    model: str | None = None,
    cascade: Path | None = None,
    opts: EvalOptions = EvalOptions(),
) -> EvaluateOutcome:
    """``replayrec evaluate``: check the plugin's options before any data is loaded, evaluate, and write
    the report (JSON, Markdown, PNG) under the reports directory."""
    if plugin is None and cascade is None:
        raise ConfigError("give --plugin NAME or --config cascade.yaml")
    if plugin is not None and model is None:  # fail fast, before any data is loaded
        parse_config(load_stage_class(kind_of(plugin), plugin), dict(options or {}))
    ds = open_dataset(settings, dataset)
    if cascade is not None:
        res = evaluate_cascade(settings, ds, load_cascade(cascade), opts, label=f"cascade:{cascade}")
    else:
        res = evaluate_plugin(settings, ds, str(plugin), options, model=model, opts=opts)
    out = res.to_dict()
    stem = f"evaluate-{ds.name}-{out['protocol']}-{(plugin or 'cascade')}"
    paths = write_report({out["plugin"]: out}, settings.reports_dir, stem, title=stem)
    return EvaluateOutcome(out, markdown_table({out["plugin"]: out}), paths, res.n_users, res.seconds)
