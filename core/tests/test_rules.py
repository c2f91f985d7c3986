"""Business rules after the models: each one changes the output exactly as configured."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.cascade import Cascade, CascadeConfig
from replayrec.cascade._rules import MMR, BlockList, FilterConsumed, GroupCap, apply_rules
from replayrec.data import Catalog
from replayrec.errors import ConfigError
from replayrec.stages import Candidate, Request

CAT = Catalog.anonymous(40, n_groups=4)  # item i is in group i % 4; raw id str(i)


def _ranked(items: list[int]) -> list[Candidate]:
    return [
        Candidate(i, float(len(items) - n), {"model": float(len(items) - n)}) for n, i in enumerate(items)
    ]


def test_filter_consumed_and_block_list_remove_items() -> None:
    req = Request.create(0, 0, [3, 5], exclude=[7])
    out = apply_rules([FilterConsumed()], req, _ranked([1, 3, 5, 7, 9]), CAT)
    assert [c.item for c in out] == [1, 9]
    out = apply_rules([BlockList(items=["9", "1"])], req, _ranked([1, 3, 9, 11]), CAT)
    assert [c.item for c in out] == [3, 11]


def test_group_cap_moves_the_overflow_down_with_a_reason() -> None:
    ranked = _ranked([0, 4, 8, 12, 1, 2, 16, 3])  # 0, 4, 8, 12, 16 share group 0
    out = apply_rules([GroupCap(max_per_group=2, window=5)], Request.create(0, 0), ranked, CAT)
    items = [c.item for c in out]
    assert items[:5] == [0, 4, 1, 2, 3]
    assert sorted(items) == sorted(c.item for c in ranked)
    moved = {c.item: c.reasons for c in out}
    assert "moved down by group_cap" in moved[8][-1]
    assert moved[0] == ()
    assert "moved up by group_cap" in moved[1][-1]


def test_mmr_trades_relevance_for_group_diversity() -> None:
    ranked = _ranked([0, 4, 8, 1, 5, 2, 3])
    same = apply_rules([MMR(trade_off=1.0)], Request.create(0, 0), ranked, CAT)
    assert [c.item for c in same] == [c.item for c in ranked], "trade-off 1: pure relevance"
    diverse = apply_rules([MMR(trade_off=0.3, window=4)], Request.create(0, 0), ranked, CAT)
    assert len({int(CAT.groups[c.item]) for c in diverse[:4]}) == 4
    assert any("mmr" in r for c in diverse for r in c.reasons)


def test_rules_in_the_cascade_config_change_recommendations() -> None:
    from replayrec.testing import tiny_world

    world = tiny_world()
    base = {
        "recall": {"type": "popularity", "k": 60},
        "rank": {"type": "passthrough", "k": 60},
        "rerank": {"type": "passthrough", "k": 10},
    }
    plain = Cascade.build(CascadeConfig.from_mapping(base), lambda spec: world.context())
    req = next(r for r in world.requests if r.history.size)
    before = plain.recommend(req)
    top = str(world.catalog.raw_ids[before[0].item])
    ruled_cfg = CascadeConfig.from_mapping(
        {**base, "rules": [{"type": "block_list", "items": [top]}, {"type": "group_cap", "max_per_group": 1}]}
    )
    ruled = Cascade.build(ruled_cfg, lambda spec: world.context())
    after = ruled.recommend(req)
    assert len(after) == 10, "rules act before the cut: the list is still full"
    assert top not in {str(world.catalog.raw_ids[c.item]) for c in after}
    groups = [int(world.catalog.groups[c.item]) for c in after]
    assert len(set(groups[:6])) == 6, "one item per group in the first places (6 groups)"
    assert [c.item for c in ruled.recommend_batch([req])[0]] == [c.item for c in after]


def test_unknown_or_malformed_rules_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"rules\.0"):
        CascadeConfig.from_mapping({"recall": {"type": "popularity"}, "rules": [{"type": "shuffle"}]})
    with pytest.raises(ConfigError, match="max_per_group"):
        CascadeConfig.from_mapping(
            {"recall": {"type": "popularity"}, "rules": [{"type": "group_cap", "max_per_group": 0}]}
        )
    assert np.all(CAT.groups[:4] == [0, 1, 2, 3])
