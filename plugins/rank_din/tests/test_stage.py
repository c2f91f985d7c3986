"""The serving stage: contract suite, batching, real-time history, explanations, safe artifact loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from replayrec.data import Catalog
from replayrec.errors import ConfigError, StageInputError
from replayrec.stages import Candidate, Request, StageContext
from replayrec.testing import RankContract, tiny_world
from replayrec_rank_din.config import DINConfig
from replayrec_rank_din.stage import DINRank, DINWeights


def _weights(job) -> DINWeights:
    return DINWeights({k: v.numpy() for k, v in job.weights().items()})


class TestDINContract(RankContract):
    @pytest.fixture
    def make_stage(self, trained_job):
        _, job = trained_job
        w = _weights(job)
        return lambda ctx: DINRank(DINConfig(), StageContext(ctx.catalog, extras={"weights": w}))


@pytest.fixture(scope="module")
def stage(trained_job) -> DINRank:
    return trained_job[1].stage()


def _cands(items) -> list[Candidate]:
    return [Candidate(int(i), float(-j), {"recall": float(-j)}) for j, i in enumerate(items)]


def test_batched_scoring_equals_one_request_at_a_time(stage: DINRank) -> None:
    world = tiny_world(seed=3)
    reqs = [r for r in world.requests if r.history.size][:6]
    rng = np.random.default_rng(0)
    cands = [
        _cands(rng.choice(np.setdiff1d(np.arange(80), r.exclude), n, replace=False))
        for r, n in zip(reqs, [5, 17, 9, 30, 1, 12], strict=True)
    ]
    batched = stage.score_batch(reqs, cands)
    for r, c, b in zip(reqs, cands, batched, strict=True):
        single = stage.score(r, c)
        assert [x.item for x in single] == [x.item for x in b]
        np.testing.assert_allclose([x.score for x in single], [x.score for x in b], rtol=1e-5, atol=1e-6)


def test_a_fresh_event_changes_the_ranking_at_once(stage: DINRank) -> None:
    world = tiny_world(seed=3)
    req = next(r for r in world.requests if r.history.size >= 3)
    pool = np.setdiff1d(np.arange(80), req.exclude)
    cands = _cands(pool[:25])
    before = {c.item: c.score for c in stage.score(req, cands)}
    new_item = int(pool[-1])
    fresh = Request.create(
        req.user,
        req.timestamp + 60,
        np.append(req.history, new_item),
        np.append(req.history_times, req.timestamp + 30),
    )
    after = {c.item: c.score for c in stage.score(fresh, cands)}
    assert max(abs(after[i] - before[i]) for i in before) > 1e-4
    # the newest event enters the attention: the pooled interest (and so every score) moves
    assert len({round(after[i] - before[i], 6) for i in before}) > 1


def test_scores_and_explanations_are_recorded(stage: DINRank) -> None:
    world = tiny_world(seed=3)
    req = next(r for r in world.requests if r.history.size)
    out = stage.score(req, world.candidates(req))
    assert all(set(c.scores) == {"recall", "din"} for c in out)
    assert all(c.reasons and c.reasons[-1].startswith("because you read item ") for c in out)
    quiet = DINRank(DINConfig(explain=False), StageContext(world.catalog, extras={"weights": stage.w}))
    assert all(not c.reasons for c in quiet.score(req, world.candidates(req)))
    cold = stage.score(Request.create(-1, 0), world.candidates(req))
    assert len(cold) == len(out), "no history: still a ranking (interest is empty)"


def test_loads_the_exported_artifact_without_pickle(trained_job, tmp_path: Path) -> None:
    _, job = trained_job
    job.export(tmp_path)
    world = tiny_world(seed=3)
    from_disk = DINRank(DINConfig(), StageContext(world.catalog, artifact=tmp_path))
    req = next(r for r in world.requests if r.history.size)
    a = job.stage().score(req, world.candidates(req))
    b = from_disk.score(req, world.candidates(req))
    assert [c.item for c in a] == [c.item for c in b]
    assert (tmp_path / "upstream.json").is_file()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save({"x": Evil()}, evil / "model.pt")  # a pickle is never read: only safetensors are
    with pytest.raises(ConfigError, match="older torch state dict"):
        DINRank(DINConfig(), StageContext(world.catalog, artifact=evil))
    (evil / "model.safetensors").write_bytes((evil / "model.pt").read_bytes())
    with pytest.raises(ConfigError, match="cannot load"):
        DINRank(DINConfig(), StageContext(world.catalog, artifact=evil))


def test_refuses_a_model_of_another_catalogue(stage: DINRank) -> None:
    with pytest.raises(ConfigError, match="items, the catalogue"):
        DINRank(DINConfig(), StageContext(Catalog.anonymous(10), extras={"weights": stage.w}))
    with pytest.raises(ConfigError, match="needs a trained model"):
        DINRank(DINConfig(), StageContext(Catalog.anonymous(10)))
    with pytest.raises(StageInputError):
        stage.score(Request.create(0, 0, [1]), [Candidate(999, 1.0)])


def test_item_embeddings_warm_start_from_the_recall_vectors(trained_job) -> None:
    from replayrec.stages import Recall
    from replayrec_rank_din.train import fit_width

    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(80, 3)) @ rng.normal(size=(3, 10))
    reduced = fit_width(low_rank.astype(np.float32), 4)
    centred = low_rank - low_rank.mean(0)
    # a rank-3 set reduced to 4 principal directions keeps every (centred) dot product
    r_c = reduced - reduced.mean(0)
    np.testing.assert_allclose(r_c @ r_c.T, centred @ centred.T, rtol=1e-3, atol=1e-3)
    assert fit_width(reduced, 6).shape == (80, 6)

    class WithVectors(Recall):
        name = "with_vectors"

        def retrieve(self, request, k):
            return []

        def item_vectors(self):
            return low_rank.astype(np.float32)

    _, job = trained_job
    saved = job.model.encoder.item.weight.detach().clone()
    vec_recall = WithVectors(Recall.Config(), StageContext(tiny_world(seed=3).catalog))
    try:
        assert job._warm_start(vec_recall)
        emb = job.model.encoder.item.weight.detach().numpy().copy()
        assert not job._warm_start(job.recall), "item-CF has no item vectors: embeddings stay as they are"
    finally:
        with torch.no_grad():
            job.model.encoder.item.weight.copy_(saved)
    np.testing.assert_allclose(emb[1:], fit_width(low_rank.astype(np.float32), emb.shape[1]), rtol=1e-5)


def test_din_trains_behind_cores_three_channel_recall_by_default() -> None:
    from replayrec.cascade import ranker_recall
    from replayrec_rank_din.config import DINTrainConfig

    default = DINTrainConfig().recall
    assert default == ranker_recall()
    assert [c["type"] for c in default["channels"]] == ["lightgcn", "itemcf", "popularity"]
    assert sum(c["quota"] for c in default["channels"]) == DINTrainConfig().recall_k
    default["channels"].clear()
    assert DINTrainConfig().recall["channels"], "each default is a fresh copy"
