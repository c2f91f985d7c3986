"""The cascade: multi-channel recall → rank → rerank."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np

from replayrec.artifacts import ARTIFACT_META, artifact_stage_config
from replayrec.cascade._config import CascadeConfig, ChannelSpec, StageSpec
from replayrec.cascade._rules import apply_rules
from replayrec.data import Catalog
from replayrec.plugins import build_stage
from replayrec.stages import Candidate, Rank, Recall, Request, Rerank, Stage, StageConfig, StageContext

__all__ = ["Cascade", "MergedRecall", "build_from_spec", "merge_channels"]

T = TypeVar("T", bound=Stage)
ContextFor = Callable[[StageSpec | ChannelSpec], StageContext]


def _normalised(cands: Sequence[Candidate]) -> dict[int, float]:
    if not cands:
        return {}
    s = np.array([c.score for c in cands], dtype=np.float64)
    s[~np.isfinite(s)] = np.nan
    lo, hi = np.nanmin(s), np.nanmax(s)
    span = hi - lo if hi > lo else 1.0
    return {c.item: float((v - lo) / span) if np.isfinite(v) else 0.0 for c, v in zip(cands, s, strict=True)}


def merge_channels(
    lists: Sequence[Sequence[Candidate]],
    names: Sequence[str],
    weights: Sequence[float],
    quotas: Sequence[int],
    k: int,
    rule: str,
) -> list[Candidate]:
    """Merge per-channel candidate lists into at most ``k`` candidates.

    Membership follows ``rule``: ``quota`` takes each channel's best ``quota`` items (first channel wins a
    duplicate) and fills any shortfall from the channels' remaining items in order; ``round_robin``
    alternates between channels; ``weighted_sum`` keeps the best fused scores. The order is always the fused
    score: the weighted sum of each channel's min-max normalised score (0 where a channel lacks the item),
    ties by item id. Every channel's raw score is kept in ``Candidate.scores``.
    """
    norms = [_normalised(lst) for lst in lists]
    fused: dict[int, float] = {}
    raw: dict[int, dict[str, float]] = {}
    for name, w, lst, norm in zip(names, weights, lists, norms, strict=True):
        for c in lst:
            fused[c.item] = fused.get(c.item, 0.0) + w * norm[c.item]
            raw.setdefault(c.item, {})[name] = c.score
    chosen: list[int] = []
    taken: set[int] = set()

    def take(item: int) -> None:
        if item not in taken and len(chosen) < k:
            taken.add(item)
            chosen.append(item)

    if rule == "quota":
        for lst, q in zip(lists, quotas, strict=True):
            before = len(chosen)
            for c in lst:
                if len(chosen) - before >= q:
                    break
                take(c.item)
        for lst in lists:
            for c in lst:
                take(c.item)
    elif rule == "round_robin":
        longest = max((len(lst) for lst in lists), default=0)
        for i in range(longest):
            for lst in lists:
                if i < len(lst):
                    take(lst[i].item)
    elif rule == "weighted_sum":
        for item in sorted(fused, key=lambda i: (-fused[i], i)):
            take(item)
    else:
        raise ValueError(f"unknown merge rule {rule!r}")
    chosen.sort(key=lambda i: (-fused[i], i))
    return [Candidate(i, fused[i], {"recall": fused[i], **raw[i]}) for i in chosen]


class MergedRecall(Recall):
    """Several recall channels behind one :class:`Recall` (a single channel passes straight through)."""

    name: ClassVar[str] = "merged"
    Config: ClassVar[type[StageConfig]] = StageConfig

    def __init__(
        self,
        channels: Sequence[Recall],
        specs: Sequence[ChannelSpec],
        k: int,
        rule: str,
        context: StageContext,
    ) -> None:
        super().__init__(StageConfig(), context)
        self.channels = list(channels)
        self.specs = list(specs)
        self.k = k
        self.rule = rule
        n = len(self.channels)
        self.quotas = [s.quota if s.quota is not None else max(1, k // n) for s in self.specs]
        self.names = [
            f"recall:{s.type}" if n == 1 else f"recall:{s.type}#{i}" for i, s in enumerate(self.specs)
        ]

    @property
    def supports_full_ranking(self) -> bool:  # type: ignore[override]
        return len(self.channels) == 1 and self.channels[0].supports_full_ranking

    def retrieve(self, request: Request, k: int) -> list[Candidate]:
        self.check_k(k)
        if len(self.channels) == 1:
            return self.channels[0].retrieve(request, k)
        return self._merge([ch.retrieve(request, k) for ch in self.channels], k)

    def _merge(self, lists: Sequence[Sequence[Candidate]], k: int) -> list[Candidate]:
        weights = [s.weight for s in self.specs]
        quotas = [min(q, k) for q in self.quotas]
        return merge_channels(lists, self.names, weights, quotas, k, self.rule)

    def retrieve_batch(self, requests: Sequence[Request], k: int) -> list[list[Candidate]]:
        """Each channel's batch retrieval (one pass per channel), merged request by request."""
        self.check_k(k)
        if len(self.channels) == 1:
            return self.channels[0].retrieve_batch(requests, k)
        per_channel = [ch.retrieve_batch(requests, k) for ch in self.channels]
        return [self._merge([lists[i] for lists in per_channel], k) for i in range(len(requests))]

    def item_vectors(self) -> np.ndarray | None:
        """The first channel's learned item vectors (a later stage's warm start), if any has them."""
        for ch in self.channels:
            vecs = ch.item_vectors()
            if vecs is not None:
                return vecs
        return None

    def score_all(self, requests: Sequence[Request]) -> np.ndarray:
        if len(self.channels) != 1:
            raise NotImplementedError("a multi-channel recall has no full-catalogue score")
        return self.channels[0].score_all(requests)

    def warmup(self) -> None:
        for ch in self.channels:
            ch.warmup()

    def close(self) -> None:
        for ch in self.channels:
            ch.close()


@dataclass
class Cascade:
    """recall (k_recall) → rank (k_rank) → rerank (k_final)."""

    recall: MergedRecall
    rank: Rank
    rerank: Rerank
    config: CascadeConfig
    catalog: Catalog | None = None

    @classmethod
    def build(cls, config: CascadeConfig, context_for: ContextFor) -> Cascade:
        """Construct every stage; ``context_for(spec)`` supplies each stage's context (data, artifact)."""
        channels: list[Recall] = []
        for spec in config.recall.channels:
            channels.append(_build(Recall, "recall", spec, context_for))  # type: ignore[type-abstract]
        base = context_for(config.recall.channels[0])
        recall = MergedRecall(channels, config.recall.channels, config.recall.k, config.recall.merge, base)
        rank = _build(Rank, "rank", config.rank, context_for)  # type: ignore[type-abstract]
        rerank = _build(Rerank, "rerank", config.rerank, context_for)  # type: ignore[type-abstract]
        return cls(recall, rank, rerank, config, base.catalog)

    def recommend(self, request: Request, k: int | None = None) -> list[Candidate]:
        final_k = k if k is not None else self.config.rerank.k
        cands = self.recall.retrieve(request, self.config.recall.k)
        scored = self.rank.score(request, cands)[: self.config.rank.k]
        return self.finish(request, scored, final_k)

    def finish(self, request: Request, scored: list[Candidate], k: int) -> list[Candidate]:
        """Rerank, then the business rules over the whole reranked list, then the first ``k``."""
        if not self.config.rules or self.catalog is None:
            return self.rerank.rerank(request, scored, k)
        ordered = self.rerank.rerank(request, scored, max(len(scored), 1))
        return apply_rules(self.config.rules, request, ordered, self.catalog)[:k]

    def recommend_batch(self, requests: Sequence[Request], k: int | None = None) -> list[list[Candidate]]:
        """:meth:`recommend` for many requests, using each stage's batch method."""
        final_k = k if k is not None else self.config.rerank.k
        cands = self.recall.retrieve_batch(requests, self.config.recall.k)
        scored = [s[: self.config.rank.k] for s in self.rank.score_batch(requests, cands)]
        return [self.finish(r, s, final_k) for r, s in zip(requests, scored, strict=True)]

    def warmup(self) -> None:
        for st in (self.recall, self.rank, self.rerank):
            st.warmup()


def build_from_spec(kind: str, spec: StageSpec | ChannelSpec, context: StageContext) -> Stage:
    """One stage; when its context names a trained artifact, the serving config saved with the artifact is
    the base and the spec's own keys override it."""
    options = dict(spec.options)
    if context.artifact is not None and (context.artifact / ARTIFACT_META).is_file():
        options = {**artifact_stage_config(context.artifact, plugin=spec.type), **options}
    return build_stage(kind, spec.type, options, context)


def _build(base: type[T], kind: str, spec: StageSpec | ChannelSpec, context_for: ContextFor) -> T:
    stage = build_from_spec(kind, spec, context_for(spec))
    if not isinstance(stage, base):  # the loader already checked the class; keep mypy honest
        raise TypeError(f"{spec.type} is not a {kind} stage")
    return stage
