"""Business rules: configurable post-processing applied after the models, before the list is cut to size.

Cascade YAML::

    rules:
      - {type: filter_consumed}                 # never show what the user already has
      - {type: block_list, items: ["0316015849"]}   # the shop's raw item ids
      - {type: group_cap, max_per_group: 3}     # at most 3 items of one item group in the list
      - {type: mmr, trade_off: 0.8}             # maximal marginal relevance over item groups

Every rule sees the whole ordered list the last stage produced and returns a new one; a candidate a rule moved
gets a reason naming the rule, so explanations say which rule changed the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from replayrec.data import Catalog
from replayrec.errors import ConfigError
from replayrec.stages import Candidate, Request

__all__ = ["MMR", "BlockList", "FilterConsumed", "GroupCap", "Rule", "apply_rules"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def apply(self, request: Request, ranked: list[Candidate], catalog: Catalog) -> list[Candidate]:
        raise NotImplementedError


class FilterConsumed(_Rule):
    """Drop items the user already consumed (the request's history and exclusions)."""

    type: Literal["filter_consumed"] = "filter_consumed"

    def apply(self, request: Request, ranked: list[Candidate], catalog: Catalog) -> list[Candidate]:
        seen = set(request.history.tolist()) | set(request.exclude.tolist())
        return [c for c in ranked if c.item not in seen]


class BlockList(_Rule):
    """Drop blocked items, given as the shop's raw item ids."""

    type: Literal["block_list"] = "block_list"
    items: list[str] = Field(default_factory=list)

    def apply(self, request: Request, ranked: list[Candidate], catalog: Catalog) -> list[Candidate]:
        blocked = set(self.items)
        return [c for c in ranked if str(catalog.raw_ids[c.item]) not in blocked]


def _moved(c: Candidate, why: str) -> Candidate:
    return Candidate(c.item, c.score, c.scores, (*c.reasons, why))


class GroupCap(_Rule):
    """At most ``max_per_group`` items of one item group in the first ``window`` places; the overflow keeps
    its order after them."""

    type: Literal["group_cap"] = "group_cap"
    max_per_group: int = Field(default=3, gt=0)
    window: int = Field(default=10, gt=0)

    def apply(self, request: Request, ranked: list[Candidate], catalog: Catalog) -> list[Candidate]:
        kept: list[Candidate] = []
        later: list[Candidate] = []
        counts: dict[int, int] = {}
        for pos, c in enumerate(ranked):
            g = int(catalog.groups[c.item])
            if len(kept) < self.window and (g < 0 or counts.get(g, 0) < self.max_per_group):
                counts[g] = counts.get(g, 0) + 1
                up = len(kept) < pos  # an item of a capped group went down past it
                kept.append(_moved(c, "moved up by group_cap: a capped group made room") if up else c)
            elif len(kept) < self.window:
                why = f"moved down by group_cap: {self.max_per_group} of its group above"
                later.append(_moved(c, why))
            else:
                later.append(c)
        return kept + later


class MMR(_Rule):
    """Maximal marginal relevance: greedily pick ``trade_off · relevance − (1 − trade_off) · redundancy``,
    where relevance is the min-max normalised score and redundancy is 1 when an item of the same group is
    already placed (0 otherwise)."""

    type: Literal["mmr"] = "mmr"
    trade_off: float = Field(default=0.8, ge=0, le=1)
    window: int = Field(default=10, gt=0)

    def apply(self, request: Request, ranked: list[Candidate], catalog: Catalog) -> list[Candidate]:
        if len(ranked) < 2:
            return ranked
        s = np.array([c.score for c in ranked], dtype=np.float64)
        span = float(s.max() - s.min()) or 1.0
        rel = (s - s.min()) / span
        groups = np.array([int(catalog.groups[c.item]) for c in ranked])
        left = list(range(len(ranked)))
        placed: set[int] = set()
        out: list[Candidate] = []
        while left and len(out) < self.window:
            red = np.array([1.0 if groups[i] >= 0 and groups[i] in placed else 0.0 for i in left])
            gain = self.trade_off * rel[left] - (1 - self.trade_off) * red
            pick = left[int(np.argmax(gain))]  # ties: the earlier (higher-scored) item
            c = ranked[pick]
            out.append(c if pick == min(left) else _moved(c, "reordered by mmr: diversity over item groups"))
            placed.add(int(groups[pick]))
            left.remove(pick)
        return out + [ranked[i] for i in left]


Rule = Annotated[FilterConsumed | BlockList | GroupCap | MMR, Field(discriminator="type")]


def apply_rules(
    rules: Sequence[_Rule], request: Request, ranked: Sequence[Candidate], catalog: Catalog
) -> list[Candidate]:
    """Apply ``rules`` in order; unknown item ids are a configuration error."""
    out = list(ranked)
    for rule in rules:
        out = rule.apply(request, out, catalog)
    if any(not 0 <= c.item < catalog.n_items for c in out):
        raise ConfigError("a business rule returned an item outside the catalogue")
    return out
