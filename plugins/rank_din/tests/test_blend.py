"""The served score blends DIN with the recall's order; training chooses the weight on validation."""

from __future__ import annotations

import numpy as np
import pytest

from replayrec.evaluation import EvalSet, evaluate
from replayrec.stages import Candidate, Request, StageContext
from replayrec.testing import quick_fit, tiny_world
from replayrec.training import TrainData, holdout_validation
from replayrec_rank_din.config import DINConfig, DINTrainConfig
from replayrec_rank_din.data import Candidates
from replayrec_rank_din.stage import DINRank, blend_with_order
from replayrec_rank_din.train import BLEND_GRID, blend_curve, build


def _cands(items) -> list[Candidate]:
    return [Candidate(int(i), float(-j), {"recall": float(-j)}) for j, i in enumerate(items)]


def test_blend_weights_zero_and_one_are_din_alone_and_the_incoming_order() -> None:
    logits = np.array([[0.5, 3.0, -1.0, 2.0, 9.0], [4.0, -2.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    count = np.array([4, 3])
    np.testing.assert_array_equal(blend_with_order(logits, count, 0.0)[0, :4], logits[0, :4])
    by_order = blend_with_order(logits, count, 1.0)
    for row, n in enumerate(count):
        assert list(np.argsort(-by_order[row, :n], kind="stable")) == list(range(n))
    half = blend_with_order(logits, count, 0.5)
    assert (half[:, 4] == 0).all(), "padding is ignored and returned as 0"
    assert half[1, 3] == 0
    z = (logits[0, :4] - logits[0, :4].mean()) / logits[0, :4].std()
    prior = -np.log1p(np.arange(4))
    expected = 0.5 * z + 0.5 * (prior - prior.mean()) / prior.std()
    np.testing.assert_allclose(half[0, :4], expected, rtol=1e-6)
    assert blend_with_order(np.array([[7.0]]), np.array([1]), 0.5)[0, 0] == 0, "a single candidate: no spread"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend_with_order(logits, count, 1.5)


@pytest.fixture(scope="module")
def stage(trained_job) -> DINRank:
    return trained_job[1].stage()


def _with_blend(stage: DINRank, weight: float) -> DINRank:
    ctx = StageContext(stage.context.catalog, extras={"weights": stage.w})
    return DINRank(DINConfig(recall_blend=weight), ctx)


def test_stage_with_weight_one_serves_the_recall_order(stage: DINRank) -> None:
    world = tiny_world(seed=3)
    reqs = [r for r in world.requests if r.history.size][:5]
    cands = [world.candidates(r, 25) for r in reqs]
    for r, c, out in zip(reqs, cands, _with_blend(stage, 1.0).score_batch(reqs, cands), strict=True):
        assert [x.item for x in out] == [x.item for x in c]
        din = stage.score(r, c)
        assert [x.item for x in din] != [x.item for x in c], "DIN alone reorders the list"
        logits = {x.item: x.score for x in din}
        # any weight in between: the documented formula, over the logits DIN gives alone
        mixed = {x.item: x.score for x in _with_blend(stage, 0.3).score(r, c)}
        want = blend_with_order(np.array([[logits[x.item] for x in c]]), np.array([len(c)]), 0.3)[0]
        np.testing.assert_allclose([mixed[x.item] for x in c], want, rtol=1e-5, atol=1e-6)


def test_logits_are_the_unblended_scores_and_inputs_are_checked(stage: DINRank) -> None:
    world = tiny_world(seed=3)
    reqs = [r for r in world.requests if r.history.size][:4]
    items = np.stack([[c.item for c in world.candidates(r, 12)] for r in reqs])
    logits = stage.logits(reqs, items)
    for row, r in enumerate(reqs):
        scored = {c.item: c.score for c in stage.score(r, _cands(items[row]))}
        np.testing.assert_allclose(logits[row], [scored[int(i)] for i in items[row]], rtol=1e-5, atol=1e-6)
    from replayrec.errors import StageInputError

    with pytest.raises(StageInputError, match="must be"):
        stage.logits(reqs, items[:2])
    with pytest.raises(StageInputError, match="must lie in"):
        stage.logits(reqs[:1], np.array([[stage.w.n_items]]))


def test_many_small_chunks_answer_in_the_given_order(stage: DINRank, monkeypatch) -> None:
    import replayrec_rank_din.stage as module

    world = tiny_world(seed=3)
    reqs = [*world.requests[:8], Request.create(-1, 0)]
    cands = [world.candidates(r, n) for r, n in zip(reqs, [5, 9, 0, 30, 1, 12, 7, 3, 4], strict=True)]
    whole = stage.score_batch(reqs, cands)
    monkeypatch.setattr(module, "_CHUNK_FLOATS", 1)  # one request per chunk
    for a, b in zip(whole, stage.score_batch(reqs, cands), strict=True):
        assert [x.item for x in a] == [x.item for x in b]
        np.testing.assert_allclose([x.score for x in a], [x.score for x in b], rtol=1e-5, atol=1e-6)
    assert whole[2] == []
    assert len(whole[3]) == 30


def test_blend_curve_falls_back_to_the_recall_order_when_din_is_wrong() -> None:
    # two requests whose recall puts the target first; "DIN" puts it last
    items = np.array([[3, 1, 2, -1], [5, 4, 6, 7]], dtype=np.int32)
    cands = Candidates(items, np.zeros(items.shape, np.float32), np.array([3, 4]))
    valid = EvalSet(
        users=np.array([0, 1]),
        times=np.array([0, 0]),
        hist_ptr=np.array([0, 0, 0]),
        hist_items=np.zeros(0, np.int64),
        hist_times=np.zeros(0, np.int64),
        tgt_ptr=np.array([0, 1, 2]),
        tgt_items=np.array([3, 5]),
    )
    wrong = np.array([[-5.0, 1.0, 2.0, 0.0], [-5.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    curve = blend_curve(wrong, cands, valid, "ndcg@10")
    assert list(curve) == list(BLEND_GRID)
    assert curve[1.0] == pytest.approx(1.0), "the recall order ranks both targets first"
    assert curve[0.0] == pytest.approx(np.mean([1 / np.log2(4), 1 / np.log2(5)]))
    assert curve[0.0] < curve[0.5] <= curve[1.0]
    assert blend_curve(-wrong, cands, valid, "hr@1")[0.0] == 1.0, "a DIN that is right wins alone"
    with pytest.raises(Exception, match="cannot compute the monitor"):
        blend_curve(wrong, cands, valid, "something")


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory):
    """A DIN job with validation requests (held out of the tiny world), briefly trained."""
    from replayrec.config import Settings
    from replayrec.registry import StageResolver

    world = tiny_world(seed=3)
    fit, valid = holdout_validation(world.train, 0, 60)
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), data_dir=tmp_path_factory.mktemp("data"))
    resolver = StageResolver(settings, "tiny", StageContext(world.catalog, fit, seed=0))
    data = TrainData("tiny", "given", world.catalog, fit, valid, 50, 0, resolver)
    config = {"recall": {"type": "itemcf"}, "recall_k": 30, "item_dim": 16, "group_dim": 4}
    config |= {"mlp_hidden": [32, 16], "batch_size": 128, "lr": 0.01, "epochs": 2, "valid_users": 40}
    return quick_fit(build(config, data), 2)


def test_validate_chooses_the_best_weight_and_exports_it(validated, tmp_path) -> None:
    job = validated
    assert len(job.validation_set()) == 40, "valid_users caps the validation requests"
    lists = job.validation_model()
    _index, reqs, cands = job._validation_candidates()
    logits = DINRank(DINConfig(), job._context()).logits(reqs, np.maximum(cands.items, 0))
    curve = blend_curve(logits, cands, job.validation_set(), "ndcg@10")
    chosen = job.stage().cfg.recall_blend
    assert curve[chosen] == max(curve.values())
    assert curve[chosen] >= curve[1.0]
    assert curve[chosen] >= curve[0.0]
    # what the runner measures on the lists is exactly the chosen weight's validation metric
    res = evaluate(lists, job.validation_set(), n_items=80, history_len=50, ks=(10, 30), n_boot=0)
    assert res.metrics["ndcg@10"] == pytest.approx(curve[chosen], abs=1e-9)
    assert job.export(tmp_path)["recall_blend"] == chosen
    fixed = DINTrainConfig(recall_blend=0.25)
    assert fixed.recall_blend == 0.25
    with pytest.raises(ValueError, match="recall_blend"):
        DINTrainConfig(recall_blend=2.0)


def test_export_validates_weights_it_has_not_seen(validated, tmp_path) -> None:
    import torch

    job = validated
    with torch.no_grad():
        job.model.encoder.item.weight.mul_(1.5)  # new weights: no blend chosen for them yet
    assert job._fingerprint() not in job._blends
    exported = job.export(tmp_path)["recall_blend"]
    assert job._blends[job._fingerprint()] == exported
