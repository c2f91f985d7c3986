"""The serving stage: contract suite, fold-in, artifacts loaded without pickled code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from replayrec.errors import ConfigError
from replayrec.stages import Request, StageContext
from replayrec.testing import RecallContract
from replayrec_recall_lightgcn.config import LightGCNConfig
from replayrec_recall_lightgcn.stage import LightGCNRecall


class TestLightGCNContract(RecallContract):
    @pytest.fixture
    def make_stage(self, trained_job):
        _, job = trained_job
        weights = job.weights()
        return lambda ctx: LightGCNRecall(
            LightGCNConfig(), StageContext(ctx.catalog, extras={"weights": weights})
        )


def test_training_lowered_the_loss(trained_job) -> None:
    world, job = trained_job
    stage = job.stage()
    # a trained model ranks a user's own training items far above chance (in-sample sanity)
    seqs = world.train.sequences
    ranks = []
    for u in range(0, 120, 7):
        items, _ = seqs.of(u)
        if items.size < 2:
            continue
        scores = stage.score_all([Request.create(u, 0, items[:-1], exclude=[])])[0]
        ranks.append((scores > scores[items[-1]]).mean())
    assert np.mean(ranks) < 0.35


def test_fold_in_reproduces_the_trained_user_embedding(trained_job) -> None:
    """Folding in exactly a user's training items gives LightGCN's user embedding minus its ego term."""
    world, job = trained_job
    w = job.weights()
    stage = LightGCNRecall(LightGCNConfig(), StageContext(world.catalog, extras={"weights": w}))
    u = 11
    items = np.unique(world.train.sequences.of(u)[0])
    ego = job.model.embedding[u].detach().numpy() / (job.model.layers + 1)
    folded = stage._user_vector(Request.create(u, 0, items))
    np.testing.assert_allclose(folded, w["user_embedding"][u] - ego, atol=1e-5)


def test_a_new_event_moves_the_recall_towards_its_neighbours(trained_job) -> None:
    world, job = trained_job
    stage = job.stage()
    r = world.requests[2]
    items = stage._items
    allowed = np.setdiff1d(np.arange(items.shape[0]), r.exclude)
    new = int(allowed[0])
    before = stage.retrieve(r, 10)
    after = stage.retrieve(Request.create(r.user, r.timestamp, [*r.history.tolist(), new]), 10)
    assert [c.item for c in after] != [c.item for c in before]
    sim = items @ items[new]

    def mean_sim(cands):
        return float(np.mean([sim[c.item] for c in cands]))

    assert mean_sim(after) > mean_sim(before)
    assert new not in {c.item for c in after}, "the new event is consumed: excluded"


def test_artifact_round_trip_and_errors(trained_job, tmp_path: Path) -> None:
    world, job = trained_job
    cfg = job.export(tmp_path / "art")
    state = load_file(tmp_path / "art" / "model.safetensors")
    assert set(state) == {"user_embedding", "item_embedding", "item_fold_in"}
    stage = LightGCNRecall(LightGCNConfig(**cfg), StageContext(world.catalog, artifact=tmp_path / "art"))
    r = world.requests[0]
    assert [c.item for c in stage.retrieve(r, 5)] == [c.item for c in job.stage().retrieve(r, 5)]

    with pytest.raises(ConfigError, match="needs a trained model"):
        LightGCNRecall(LightGCNConfig(), StageContext(world.catalog))
    with pytest.raises(ConfigError, match="no model file"):
        LightGCNRecall(LightGCNConfig(), StageContext(world.catalog, artifact=tmp_path / "missing"))
    (tmp_path / "evil").mkdir()
    import pickle

    (tmp_path / "evil" / "model.safetensors").write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(ConfigError, match="cannot load"):
        LightGCNRecall(LightGCNConfig(), StageContext(world.catalog, artifact=tmp_path / "evil"))


def test_batched_retrieval_is_the_exact_top_k_whatever_the_batch(trained_job, monkeypatch) -> None:
    """``retrieve_batch`` scores chunks of requests with one product; each list is still the exact top-k of
    that request's own scores, the same alone, in small chunks or in one."""
    import replayrec_recall_lightgcn.stage as module

    world, job = trained_job
    stage = job.stage()
    reqs = world.requests
    whole = stage.retrieve_batch(reqs, 15)
    monkeypatch.setattr(module, "_BATCH", 3)  # chunks of 3, the last one shorter
    chunked = stage.retrieve_batch(reqs, 15)
    scores = stage.score_all(reqs).astype(np.float64)
    for r, a, b, s in zip(reqs, whole, chunked, scores, strict=True):
        assert [c.item for c in a] == [c.item for c in b] == [c.item for c in stage.retrieve(r, 15)]
        allowed = np.setdiff1d(np.arange(s.size), r.exclude)
        best = allowed[np.lexsort((allowed, -s[allowed]))][:15]
        assert [c.item for c in a] == best.tolist()
        np.testing.assert_allclose([c.score for c in a], s[best], rtol=1e-5)
    assert stage.retrieve_batch([], 15) == []
