"""``report ablation``: which of the reranker's inputs carry its gain. The full model (the one ``report
stages`` evaluates), the order it receives, the model retrained without each feature group, each group
permuted among a list's candidates at test time, and probes (the request made a day after the newest
history event) — every variant on the same test users, with a paired CI against the full model.

Variants are trained under ``<state>/ablation``, so they are never registered or resolved beside the real
models (``ranknet@latest`` stays the full model)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.application._datasets import open_dataset
from replayrec.application._evaluate import EvalOptions, _prepare, _run
from replayrec.application._stages import StagesRequest, _lift, _mismatch, _rank_model, _rerank_model
from replayrec.application._train import TrainRequest, _yaml_mapping, read_training_profile, train_model
from replayrec.artifacts import artifact_meta, artifacts_dir, check_protocol, read_upstream
from replayrec.cascade import Cascade, build_from_spec, trained_cascade
from replayrec.config import Settings
from replayrec.data import DATASETS, Dataset
from replayrec.errors import ConfigError
from replayrec.evaluation import EvalResult, ListFn, build_requests, markdown_table, write_report
from replayrec.stages import Candidate, Request, Rerank

__all__ = [
    "ABLATION_COLUMNS",
    "DEFAULT_ABLATION",
    "AblationReport",
    "AblationRequest",
    "AblationSpec",
    "ablation_report",
]

log = logging.getLogger("replayrec.application")

ABLATION_COLUMNS = ("ndcg@10", "hr@10", "ndcg@20", "mrr")
#: the packaged default: RankNet's three feature groups and the request-day probe
DEFAULT_ABLATION = Path(__file__).with_name("ablation.yaml")


@dataclass(frozen=True)
class AblationSpec:
    rerank: str
    train_key: str
    serve_key: str
    groups: dict[str, list[str]]
    probes: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> AblationSpec:
        raw = _yaml_mapping(path, "ablation spec")
        missing = [k for k in ("rerank", "train_key", "serve_key", "groups") if k not in raw]
        if missing:
            raise ConfigError(f"ablation spec {path} lacks {', '.join(missing)}")
        groups, probes = raw["groups"], raw.get("probes") or {}
        if (
            not isinstance(groups, dict)
            or not groups
            or not all(
                isinstance(v, list) and v and all(isinstance(n, str) for n in v) for v in groups.values()
            )
        ):
            raise ConfigError(f"ablation spec {path}: groups must map names to non-empty lists of features")
        if not isinstance(probes, dict) or not all(isinstance(v, dict) for v in probes.values()):
            raise ConfigError(f"ablation spec {path}: probes must map names to evaluation options")
        allowed = set(EvalOptions.__dataclass_fields__) - {"protocol", "split", "ks", "n_boot", "progress"}
        for name, opts in probes.items():
            bad = sorted(set(opts) - allowed)
            if bad:
                raise ConfigError(
                    f"ablation spec {path}: probe {name!r} sets {', '.join(bad)}; "
                    f"a probe may set {', '.join(sorted(allowed))}"
                )
        return cls(
            str(raw["rerank"]),
            str(raw["train_key"]),
            str(raw["serve_key"]),
            {str(k): [str(n) for n in v] for k, v in groups.items()},
            {str(k): dict(v) for k, v in probes.items()},
        )


@dataclass(frozen=True)
class AblationRequest:
    dataset: str | None = None
    protocol: str | None = None
    rank: str = "din"
    rank_model: str | None = None
    rerank_model: str | None = None
    spec: Path = DEFAULT_ABLATION
    train_missing: bool = True
    #: the training profile of the full model and its upstream stages, when they are trained here
    train_profile: Path | None = None
    n_boot: int = 1000
    progress: bool = False


@dataclass(frozen=True)
class AblationReport:
    dataset: str
    protocol: str
    model: Path
    rows: dict[str, dict[str, Any]]
    markdown: str
    report: dict[str, Path] = field(default_factory=dict)


def _ablation_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"state_dir": settings.state_dir / "ablation"})


def _variant_model(
    settings: Settings,
    ds: Dataset,
    req: AblationRequest,
    spec: AblationSpec,
    full: Path,
    group: list[str],
    profile: dict[str, Any],
) -> Path:
    """The reranker retrained without ``group``, on exactly the full model's upstream stages and with its
    training config otherwise: the newest such variant under ``<state>/ablation``, else one trained now."""
    protocol = req.protocol or DATASETS[ds.name].protocol
    own = _ablation_settings(settings)
    rank_up = read_upstream(full, "rerank")
    rank = rank_up["rank"]
    # all else equal: the full model's own training config (the profile's when it recorded none)
    trained = artifact_meta(full).get("train_config") or profile.get(spec.rerank, {})
    config = {**trained, "recall": rank_up["recall"], "rank": rank, spec.train_key: group}

    def same_config(other: dict[str, Any]) -> bool:
        """``other`` trained like ``config`` (the upstream stages are compared apart, resolved)."""
        skip = ("recall", "rank")
        return {k: v for k, v in other.items() if k not in skip} == {
            k: v for k, v in config.items() if k not in skip
        }

    root = artifacts_dir(own, spec.rerank, ds.name)
    for cand in sorted(root.glob("*/meta.json"), reverse=True) if root.is_dir() else []:
        try:
            check_protocol(cand.parent, protocol)
            why = _mismatch(cand.parent, str(rank["type"]), Path(str(rank["model"])), rank_up)
        except ConfigError as exc:
            log.info(f"skipping {cand.parent}: {exc}")
            continue
        if why is None and same_config(artifact_meta(cand.parent).get("train_config", {})):
            return cand.parent.resolve()
    if not req.train_missing:
        raise ConfigError(
            f"no {spec.rerank} model without {', '.join(group)} over {full}; train it (--train-missing)"
        )
    log.info(f"training {spec.rerank} without {', '.join(group)}")
    own.state_dir.mkdir(parents=True, exist_ok=True)
    request = TrainRequest(
        spec.rerank,
        ds.name,
        config,
        protocol=protocol,
        progress=req.progress,
        # its own registry, even where MLFLOW_TRACKING_URI names the real one
        tracking_uri=f"sqlite:///{(own.state_dir / 'mlflow.db').resolve()}",
    )
    return train_model(own, request, ds).artifact


def _row(res: EvalResult, label: str, full: EvalResult | None, n_boot: int, seed: int) -> dict[str, Any]:
    out = res.to_dict()
    out["label"] = label
    if full is not None:
        out["lift_over_full"] = _lift(full, res, n_boot, seed)
    return out


class _Shared:
    """The full model's upstream lists (recall → rank, its top ``rank_k``) for every test request, computed
    once per evaluation setting; every variant re-ranks the same lists, so the ablation costs two upstream
    passes instead of one per variant, and the variants differ only in the reranker."""

    def __init__(self, settings: Settings, ds: Dataset, rerank: str, full: Path, opts: EvalOptions) -> None:
        self.settings, self.ds, self.rerank, self.opts = settings, ds, rerank, opts
        self.p = _prepare(settings, ds, opts)
        config = trained_cascade(rerank, "rerank", full, {})
        upstream = Cascade.build(config, self.p.resolver.context_for)
        reqs = build_requests(self.p.ev, np.arange(len(self.p.ev), dtype=np.int64), self.p.split.history_len)
        self.lists: dict[tuple[int, int], list[Candidate]] = {}
        for lo in range(0, len(reqs), 512):
            chunk = reqs[lo : lo + 512]
            cands = upstream.recall.retrieve_batch(chunk, config.recall.k)
            scored = upstream.rank.score_batch(chunk, cands)
            self.lists.update(
                {(r.user, r.timestamp): s[: config.rank.k] for r, s in zip(chunk, scored, strict=True)}
            )
        self.ks = tuple(k for k in opts.ks if k <= config.rerank.k) or (config.rerank.k,)

    def _evaluate(self, lists: ListFn, label: str, meta: dict[str, Any]) -> EvalResult:
        opts = replace(self.opts, ks=self.ks)
        return _run(self.settings, self.ds, self.p, lists, label, opts, meta, time.perf_counter())

    def given(self) -> EvalResult:
        """The order the reranker receives."""

        def lists(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
            return [self.lists[(r.user, r.timestamp)][:depth] for r in requests]

        return self._evaluate(lists, f"input of {self.rerank}", {"config": {}, "model": None})

    def model(self, path: Path, options: dict[str, Any] | None = None) -> EvalResult:
        """The reranker ``path`` (with serving ``options``) over the shared lists."""
        options = dict(options or {})
        spec = trained_cascade(self.rerank, "rerank", path, options).rerank
        stage = build_from_spec("rerank", spec, self.p.resolver.context_for(spec))
        if not isinstance(stage, Rerank):
            raise ConfigError(f"{self.rerank} is not a rerank plugin")

        def lists(requests: Sequence[Request], depth: int) -> list[list[Candidate]]:
            return [stage.rerank(r, self.lists[(r.user, r.timestamp)], depth) for r in requests]

        return self._evaluate(lists, self.rerank, {"config": options, "model": str(path)})


def ablation_report(settings: Settings, req: AblationRequest) -> AblationReport:
    """Every variant of the spec against the full reranker, on the same users of the same protocol."""
    spec = AblationSpec.read(req.spec)
    profile = read_training_profile(req.train_profile)
    ds = open_dataset(settings, req.dataset)
    sreq = StagesRequest(
        dataset=ds.name,
        rank=req.rank,
        rank_model=req.rank_model,
        rerank=spec.rerank,
        rerank_model=req.rerank_model,
        protocol=req.protocol,
        train_missing=req.train_missing,
        train_profile=req.train_profile,
        progress=req.progress,
    )
    rank_path = _rank_model(settings, ds, sreq, profile)
    full_path = _rerank_model(settings, ds, sreq, rank_path, profile)
    opts = EvalOptions(protocol=req.protocol, ks=(10, 20, 50), n_boot=req.n_boot, progress=req.progress)
    seed = settings.seed
    shared = _Shared(settings, ds, spec.rerank, full_path, opts)
    full = shared.model(full_path)
    rows: dict[str, dict[str, Any]] = {"full": _row(full, f"{spec.rerank} (full model)", None, 0, seed)}
    given = shared.given()
    rows["input"] = _row(given, f"the order {spec.rerank} receives ({req.rank})", full, req.n_boot, seed)
    rows["full"]["lift_over_input"] = _lift(given, full, req.n_boot, seed)
    for name, group in spec.groups.items():
        path = _variant_model(settings, ds, req, spec, full_path, group, profile)
        label = f"retrained without {name} ({', '.join(group)})"
        rows[f"retrained:{name}"] = _row(shared.model(path), label, full, req.n_boot, seed)
        shuffled = shared.model(full_path, {spec.serve_key: group})
        rows[f"shuffled:{name}"] = _row(shuffled, f"{name} shuffled at test time", full, req.n_boot, seed)
    for name, probe in spec.probes.items():
        other = _Shared(settings, ds, spec.rerank, full_path, replace(opts, **probe))
        probed = other.model(full_path)
        rows[f"probe:{name}"] = _row(probed, f"probe: {name}", full, req.n_boot, seed)
        # does the gain over the order it receives survive the probe? (both under the probe)
        rows[f"probe:{name}"]["lift_over_input"] = _lift(other.given(), probed, req.n_boot, seed)
    table = {r["label"]: r for r in rows.values()}
    paths = write_report(
        table, settings.reports_dir, f"ablation-{ds.name}", ABLATION_COLUMNS, title=f"ablation {ds.name}"
    )
    protocol = str(full.meta.get("protocol"))
    return AblationReport(ds.name, protocol, full_path, rows, markdown_table(table, ABLATION_COLUMNS), paths)
