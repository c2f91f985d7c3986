"""Cascade configuration, multi-channel merge rules and the cascade itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from replayrec.cascade import Cascade, CascadeConfig, MergedRecall, load_cascade, merge_channels
from replayrec.errors import ConfigError, PluginError
from replayrec.stages import Candidate, StageConfig
from replayrec.testing import FixedRecall, ReverseRank, TruncateRerank, tiny_world


def _c(items_scores: list[tuple[int, float]]) -> list[Candidate]:
    return [Candidate(i, s) for i, s in items_scores]


A = _c([(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)])
B = _c([(10, 0.9), (2, 0.8), (11, 0.7), (12, 0.1)])


def test_quota_merge_takes_each_channels_share_then_fills() -> None:
    out = merge_channels([A, B], ["a", "b"], [1.0, 1.0], [2, 1], k=5, rule="quota")
    items = {c.item for c in out}
    assert {1, 2} <= items  # channel a's quota
    assert 10 in items  # channel b's quota (2 was already taken)
    assert len(out) == 5
    assert out[0].scores == {
        "recall": out[0].score,
        **({"a": 8.0, "b": 0.8} if out[0].item == 2 else out[0].scores),
    }
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)


def test_item_in_both_channels_keeps_both_scores_and_ranks_first() -> None:
    out = merge_channels([A, B], ["a", "b"], [1.0, 1.0], [4, 4], k=8, rule="weighted_sum")
    assert out[0].item == 2
    assert out[0].scores["a"] == 8.0
    assert out[0].scores["b"] == 0.8


def test_round_robin_alternates() -> None:
    out = merge_channels([A, B], ["a", "b"], [1.0, 0.0], [9, 9], k=3, rule="round_robin")
    assert {c.item for c in out} == {1, 10, 2}


def test_config_validation_and_shorthand(tmp_path: Path) -> None:
    cfg = CascadeConfig.from_mapping(
        {"recall": {"type": "itemcf", "k": 100, "neighbours": 20}, "rank": {"type": "passthrough", "k": 30}}
    )
    assert cfg.recall.channels[0].options == {"neighbours": 20}
    assert cfg.rerank.k == 10
    with pytest.raises(ConfigError, match="candidate counts must not grow"):
        CascadeConfig.from_mapping({"recall": {"type": "x", "k": 10}, "rank": {"type": "y", "k": 50}})
    with pytest.raises(ConfigError, match=r"recall.merge"):
        CascadeConfig.from_mapping({"recall": {"merge": "vote", "channels": [{"type": "x"}]}})
    with pytest.raises(ConfigError, match="rank_stage: unknown key"):
        CascadeConfig.from_mapping({"recall": {"type": "x"}, "rank_stage": {}})
    bad = tmp_path / "c.yaml"
    bad.write_text("recall: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_cascade(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_cascade(tmp_path / "none.yaml")


def test_default_cascade_builds_from_installed_plugins() -> None:
    world = tiny_world()
    cascade = Cascade.build(load_cascade(), lambda spec: world.context())
    for r in world.requests:
        out = cascade.recommend(r)
        assert len(out) <= 10
        assert not set(r.exclude.tolist()) & {c.item for c in out}
        assert all("recall" in c.scores for c in out)


def test_rank_stage_changes_the_order() -> None:
    world = tiny_world()
    ctx = world.context(seed=4)
    cfg = CascadeConfig.from_mapping(
        {
            "recall": {"type": "fixed", "k": 20},
            "rank": {"type": "reverse", "k": 10},
            "rerank": {"type": "truncate", "k": 5},
        }
    )
    recall = MergedRecall([FixedRecall(StageConfig(), ctx)], cfg.recall.channels, 20, "quota", ctx)
    cascade = Cascade(recall, ReverseRank(StageConfig(), ctx), TruncateRerank(StageConfig(), ctx), cfg)
    r = world.requests[2]
    recalled = recall.retrieve(r, 20)
    final = cascade.recommend(r)
    assert [c.item for c in final] == [c.item for c in recalled[::-1][:5]]
    assert all(c.scores["reverse"] == -c.scores["fixed"] for c in final)


def test_a_multi_channel_upstream_recall_resolves_batches_and_round_trips(tmp_path: Path) -> None:
    """A rank / rerank model may be trained behind several recall channels: the resolver builds them merged
    from the cascade's recall section, batch retrieval equals one request at a time, and the resolved spec
    is the recall section of the cascade the model is served and compared in."""
    from replayrec.cascade import recall_layout
    from replayrec.config import Settings
    from replayrec.registry import StageResolver

    world = tiny_world()
    resolver = StageResolver(Settings(state_dir=tmp_path), "synthetic", world.context())
    spec = {
        "k": 12,
        "channels": [{"type": "itemcf", "quota": 8}, {"type": "popularity", "quota": 4, "mode": "recent"}],
    }
    recall, resolved = resolver.build("recall", spec)
    assert isinstance(recall, MergedRecall)
    assert resolved["merge"] == "quota"
    assert [(c["type"], c["quota"]) for c in resolved["channels"]] == [("itemcf", 8), ("popularity", 4)]
    assert resolved["channels"][1]["mode"] == "recent"
    batch = recall.retrieve_batch(world.requests, 12)
    for r, listed in zip(world.requests, batch, strict=True):
        one = recall.retrieve(r, 12)
        assert [(c.item, c.score) for c in listed] == [(c.item, c.score) for c in one]
        assert len(listed) <= 12
    assert any(len(c.scores) > 2 for lst in batch for c in lst), "channel scores kept per candidate"
    layout = CascadeConfig.from_mapping(
        {
            "recall": recall_layout(resolved, 12),
            "rank": {"type": "passthrough", "k": 12},
            "rerank": {"type": "passthrough", "k": 12},
        }
    )
    assert [(c.type, c.quota) for c in layout.recall.channels] == [("itemcf", 8), ("popularity", 4)]
    with pytest.raises(ConfigError, match="invalid multi-channel recall"):
        resolver.build("recall", {"channels": []})
    with pytest.raises(PluginError, match="unknown recall plugin 'passthrough'"):
        resolver.build("recall", {"channels": [{"type": "passthrough"}]})
