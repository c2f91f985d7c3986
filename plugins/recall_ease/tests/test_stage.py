"""The serving stage: contract suite, scores = x_u · B + prior, fold-in, artifacts without pickled code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from replayrec.data import Catalog
from replayrec.errors import ConfigError, StageInputError
from replayrec.stages import Request, StageContext
from replayrec.testing import RecallContract
from replayrec_recall_ease.config import EaseConfig
from replayrec_recall_ease.model import EaseWeights, fit_ease
from replayrec_recall_ease.stage import EaseRecall


def _stage(weights: EaseWeights, catalog: Catalog, **config: float) -> EaseRecall:
    return EaseRecall(EaseConfig(**config), StageContext(catalog, extras={"weights": weights}))


class TestEaseContract(RecallContract):
    @pytest.fixture
    def make_stage(self):
        # 60 of the 80 items fitted: the others are scored by the popularity prior alone
        def make(ctx: StageContext) -> EaseRecall:
            weights = fit_ease(ctx.require_train("ease"), 5.0, max_items=60, neighbours=20).weights
            return _stage(weights, ctx.catalog)

        return make


@pytest.fixture(scope="module")
def weights(world) -> EaseWeights:
    return fit_ease(world.train, 5.0, max_items=60, neighbours=20).weights


def test_scores_are_the_weighted_history_rows_of_b_plus_the_prior(world, weights) -> None:
    b = weights.matrix().toarray()
    counts = world.train.item_counts.astype(np.float64)
    prior = counts / counts.max() * weights.data[weights.data > 0].min() * 1e-3
    stage = _stage(weights, world.catalog, recency_decay=0.5)
    history = [3, 7, 3, 11]  # 3 twice: it counts once, at its newest position (one step back)
    got = stage.score_all([Request.create(0, 0, history)])[0]
    want = b[11] + np.exp(-0.5) * b[3] + np.exp(-1.0) * b[7] + prior
    np.testing.assert_allclose(got, want, rtol=1e-12)
    empty = stage.score_all([Request.create(-1, 0)])[0]
    np.testing.assert_allclose(empty, prior)
    top = [c.item for c in stage.retrieve(Request.create(-1, 0), 5)]
    assert top == np.lexsort((np.arange(counts.size), -counts))[:5].tolist(), "no history: popularity"


def test_items_outside_the_fitted_ones_get_only_the_prior(world, weights) -> None:
    stage = _stage(weights, world.catalog)
    outside = np.setdiff1d(np.arange(world.catalog.n_items), weights.items)
    assert outside.size == 20
    scores = stage.score_all(world.requests)
    np.testing.assert_allclose(scores[:, outside], np.broadcast_to(stage._prior[outside], (len(scores), 20)))
    assert (stage._prior > 0).sum() == (world.train.item_counts > 0).sum()


def test_a_new_history_event_changes_the_recall_at_once(world, weights) -> None:
    stage = _stage(weights, world.catalog)
    r = world.requests[2]
    before = stage.retrieve(r, 10)
    allowed = np.setdiff1d(weights.items, r.exclude)
    new = int(allowed[0])
    after = stage.retrieve(Request.create(r.user, r.timestamp, [*r.history.tolist(), new]), 10)
    assert [c.item for c in after] != [c.item for c in before]
    assert new not in {c.item for c in after}, "the new event is consumed: excluded"
    row = weights.matrix().getrow(new).toarray()[0]

    def pull(cands) -> float:  # how much the new item's row of B points at a list
        return float(np.mean([row[c.item] for c in cands]))

    assert pull(after) > pull(before)


def test_batched_retrieval_is_the_exact_top_k_whatever_the_batch(world, weights, monkeypatch) -> None:
    import replayrec_recall_ease.stage as module

    stage = _stage(weights, world.catalog)
    reqs = world.requests
    whole = stage.retrieve_batch(reqs, 15)
    monkeypatch.setattr(module, "_BATCH", 3)
    chunked = stage.retrieve_batch(reqs, 15)
    scores = stage.score_all(reqs)
    for r, a, b, s in zip(reqs, whole, chunked, scores, strict=True):
        assert [c.item for c in a] == [c.item for c in b] == [c.item for c in stage.retrieve(r, 15)]
        allowed = np.setdiff1d(np.arange(s.size), r.exclude)
        assert [c.item for c in a] == allowed[np.lexsort((allowed, -s[allowed]))][:15].tolist()
    assert stage.retrieve_batch([], 15) == []


def test_bad_input_is_a_stage_input_error(world, weights) -> None:
    stage = _stage(weights, world.catalog)
    with pytest.raises(StageInputError, match="outside the catalogue"):
        stage.score_all([Request.create(0, 0, [world.catalog.n_items])])
    with pytest.raises(StageInputError, match="k must be a positive integer"):
        stage.retrieve_batch(world.requests, 0)
    with pytest.raises(StageInputError, match="expected a Request"):
        stage.retrieve_batch(["not a request"], 5)  # type: ignore[list-item]


def test_artifact_round_trip_and_errors(world, trained_job, tmp_path: Path) -> None:
    cfg = trained_job.export(tmp_path / "art")
    assert (tmp_path / "art" / "ease_fit.json").is_file()
    stage = EaseRecall(EaseConfig(**cfg), StageContext(world.catalog, artifact=tmp_path / "art"))
    for r in world.requests:
        assert [c.item for c in stage.retrieve(r, 10)] == [
            c.item for c in trained_job.stage().retrieve(r, 10)
        ]

    def load(path: Path | None, catalog: Catalog = world.catalog) -> EaseRecall:
        return EaseRecall(EaseConfig(), StageContext(catalog, artifact=path))

    with pytest.raises(ConfigError, match="needs a trained model"):
        load(None)
    with pytest.raises(ConfigError, match="no model file"):
        load(tmp_path / "missing")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "model.safetensors").write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(ConfigError, match="cannot load"):
        load(tmp_path / "evil")
    (tmp_path / "foreign").mkdir()
    save_file(
        {"item_embedding": np.zeros((80, 4), np.float32)}, str(tmp_path / "foreign" / "model.safetensors")
    )
    with pytest.raises(ConfigError, match="lacks tensors"):
        load(tmp_path / "foreign")
    with pytest.raises(ConfigError, match="the model has 80 items, the catalogue 81"):
        load(tmp_path / "art", Catalog.anonymous(81, n_groups=2))


def test_serving_imports_no_training_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, replayrec_recall_ease, replayrec_recall_ease.stage; "
        "print(sorted(m for m in ('torch', 'lightning', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
