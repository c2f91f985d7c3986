"""RankNet: features as of the request time, the pairwise loss, numpy serving = torch, contract suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from replayrec.data import Interactions
from replayrec.errors import StageInputError
from replayrec.evaluation import build_requests
from replayrec.features import ItemTimeline
from replayrec.stages import Candidate, Request, StageContext
from replayrec.testing import RerankContract, quick_fit
from replayrec_rerank_ranknet.config import RankNetConfig
from replayrec_rerank_ranknet.features import FEATURES, list_features, unit_vectors
from replayrec_rerank_ranknet.model import RankNet, pairwise_loss
from replayrec_rerank_ranknet.stage import RankNetRerank, RankNetWeights

DAY = 86_400


def test_popularity_and_recency_only_count_events_before_the_request() -> None:
    # item 0: events at days 1, 2, 40; item 1: day 39; item 2: never
    ev = Interactions(
        np.array([0, 1, 2, 3]), np.array([0, 0, 1, 0]), np.array([1, 2, 39, 40]) * DAY, n_users=4, n_items=3
    )
    clock = ItemTimeline.from_interactions(ev)
    vecs = unit_vectors(np.eye(3))
    req = Request.create(9, 40 * DAY, [1], [39 * DAY])  # at day 40: item 0's day-40 event is not "before"
    f = list_features(
        req, [Candidate(0, 2.0, {"recall": 5.0, "din": 2.0}), Candidate(2, 1.0)], clock, vecs, "din"
    )
    col = {name: i for i, name in enumerate(FEATURES)}
    assert f[0, col["pop_all"]] == pytest.approx(np.log1p(2))
    assert f[0, col["pop_recent"]] == pytest.approx(0.0), "days 1 and 2 are outside the 30-day window"
    assert f[0, col["age"]] == pytest.approx(np.log1p(39))
    assert f[0, col["last_seen"]] == pytest.approx(np.log1p(38))
    assert f[1, col["pop_all"]] == 0
    assert f[0, col["rank_score"]] == 2.0
    assert f[0, col["recall"]] == 5.0
    later = list_features(Request.create(9, 41 * DAY, [1]), [Candidate(0, 1.0)], clock, vecs, "din")
    assert later[0, col["pop_all"]] == pytest.approx(np.log1p(3)), "a day later the day-40 event counts"


def test_similarity_and_redundancy_features() -> None:
    ev = Interactions(np.array([0]), np.array([0]), np.array([0]), n_users=1, n_items=4)
    vecs = unit_vectors(np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32))
    req = Request.create(0, DAY, [2])
    clock = ItemTimeline.from_interactions(ev)
    f = list_features(req, [Candidate(i, 1.0) for i in (0, 1, 2, 3)], clock, vecs, "din")
    col = {name: i for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(f[:, col["sim_last"]], [0, 0, 1, np.sqrt(0.5)], atol=1e-6)
    # item 1 repeats item 0 (placed above): fully redundant; item 2 is orthogonal to both above it
    np.testing.assert_allclose(f[:, col["redundancy"]], [0, 1, 0, np.sqrt(0.5)], atol=1e-6)


def test_pairwise_loss_prefers_the_right_order_and_ignores_padding() -> None:
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True, False]])
    good = pairwise_loss(torch.tensor([[3.0, 1.0, 0.0, 99.0]]), labels, valid)
    bad = pairwise_loss(torch.tensor([[0.0, 1.0, 3.0, -99.0]]), labels, valid)
    assert good < bad
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-3.0))) / 2
    assert float(good) == pytest.approx(expected, rel=1e-5), "padding (score 99) is not a pair"
    scores = torch.zeros(1, 4, requires_grad=True)
    pairwise_loss(scores, labels, valid).backward()
    assert scores.grad[0, 0] < 0 < scores.grad[0, 1], "the positive is pushed up, negatives down"


def test_numpy_scorer_equals_torch() -> None:
    torch.manual_seed(0)
    model = RankNet(len(FEATURES), [8, 4])
    model.set_scaling(torch.randn(len(FEATURES)), torch.rand(len(FEATURES)) + 0.5)
    x = torch.randn(6, len(FEATURES))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["item_vectors"] = np.zeros((3, 2), np.float32)
    np.testing.assert_allclose(RankNetWeights(state).score(x.numpy()), model(x).detach().numpy(), rtol=1e-5)


class TestRankNetContract(RerankContract):
    @pytest.fixture
    def make_stage(self, trained_job):
        _, _, job = trained_job
        stage = job.stage()
        return lambda ctx: RankNetRerank(
            stage.cfg, StageContext(ctx.catalog, extras={"weights": stage.w, "clock": stage.clock})
        )


def test_training_learned_to_order_the_held_out_lists(trained_job) -> None:
    from replayrec.evaluation import evaluate

    _, data, job = trained_job
    res = evaluate(
        job.validation_model(),
        job.validation_set(),
        n_items=data.catalog.n_items,
        history_len=None,
        ks=(10,),
        n_boot=0,
    )
    passthrough = evaluate(
        lambda reqs, depth: [job.lists[(r.user, r.timestamp)][:depth] for r in reqs],
        job.validation_set(),
        n_items=data.catalog.n_items,
        history_len=None,
        ks=(10,),
        n_boot=0,
    )
    assert len(job.tensors) > 20
    assert res.metrics["hr@10"] >= passthrough.metrics["hr@10"] - 0.05


def test_export_and_reload_without_pickle(trained_job, tmp_path: Path) -> None:
    world, data, job = trained_job
    job.export(tmp_path)
    ctx = StageContext(world.catalog, train=data.fit, artifact=tmp_path)
    stage = RankNetRerank(RankNetConfig(rank_stage="passthrough"), ctx)
    req = next(r for r in world.requests if r.history.size)
    cands = world.candidates(req)
    assert [c.item for c in stage.rerank(req, cands, 10)] == [
        c.item for c in job.stage().rerank(req, cands, 10)
    ]
    with pytest.raises(StageInputError, match="needs training interactions"):
        RankNetRerank(RankNetConfig(), StageContext(world.catalog, artifact=tmp_path))


def test_only_requests_whose_target_was_recalled_are_ranked_for_training(trained_job) -> None:
    """Skipping the training requests whose target is not among the recall's candidates drops exactly the
    lists that could not hold it: every list with its target is kept, unchanged."""
    _, data, job = trained_job
    recall, _ = data.resolver.build("recall", job.config.recall)
    rank, _ = data.resolver.build("rank", job.config.rank)
    everything = job._ranked_lists(recall, rank, job.fit_set, learnable=False)
    kept = {k: v for k, v in job.lists.items() if k in everything}
    assert set(kept) < set(everything), "some training requests were never ranked"
    reqs = build_requests(job.fit_set, np.arange(len(job.fit_set)), data.history_len)
    for row, r in enumerate(reqs):
        key = (r.user, r.timestamp)
        has_target = bool(np.isin(job.fit_set.targets(row), [c.item for c in everything[key]]).any())
        if has_target:
            assert [c.item for c in kept[key]] == [c.item for c in everything[key]]
    assert set(job.lists) >= {
        (r.user, r.timestamp) for r in build_requests(job.valid_set, np.arange(len(job.valid_set)), None)
    }, "every held-out request keeps its list (validation counts them all)"


def test_channel_scores_are_features_scaled_within_the_list() -> None:
    """With a multi-channel recall each channel's score is a feature: min-max scaled over the items it
    proposed in this list, 0 (and not proposed) elsewhere; a channel that proposed one item gets 1."""
    ev = Interactions(np.array([0]), np.array([0]), np.array([0]), n_users=1, n_items=4)
    clock, vecs = ItemTimeline.from_interactions(ev), unit_vectors(np.eye(4))
    ranked = [
        Candidate(0, 1.0, {"recall": 1.0, "recall:lightgcn#0": 3.0, "recall:itemcf#1": 0.5}),
        Candidate(1, 0.5, {"recall": 0.5, "recall:lightgcn#0": 1.0}),
        Candidate(2, 0.2, {"recall": 0.2, "recall:lightgcn#0": 2.0}),
    ]
    channels = ["recall:lightgcn#0", "recall:itemcf#1", "recall:popularity#2"]
    f = list_features(Request.create(0, DAY, [3]), ranked, clock, vecs, "din", channels=channels)
    assert f.shape == (3, len(FEATURES) + 6)
    extra = f[:, len(FEATURES) :]
    np.testing.assert_allclose(extra[:, 0], [1.0, 0.0, 0.5])  # lightgcn scaled 3 → 1, 1 → 0, 2 → 0.5
    np.testing.assert_allclose(extra[:, 1], [1, 1, 1])
    np.testing.assert_allclose(extra[:, 2:4], [[1, 1], [0, 0], [0, 0]])
    np.testing.assert_allclose(extra[:, 4:], 0)  # a channel that proposed nothing in this list
    plain = list_features(Request.create(0, DAY, [3]), ranked, clock, vecs, "din")
    np.testing.assert_array_equal(plain, f[:, : len(FEATURES)])  # the base features do not change


def test_a_multi_channel_recall_trains_with_its_channel_features(tmp_path: Path) -> None:
    """Behind item-CF + recent popularity the trainer records both channels, the model scores their
    features, serving rebuilds them from the saved config, and a config naming other channels is refused."""
    from replayrec.config import Settings
    from replayrec.errors import ConfigError
    from replayrec.registry import StageResolver
    from replayrec.testing import quick_fit, tiny_world
    from replayrec.training import TrainData, holdout_validation
    from replayrec_rerank_ranknet.train import build

    world = tiny_world(seed=4)
    fit, valid = holdout_validation(world.train, 0, 1000)
    ctx = world.context(seed=0)
    resolver = StageResolver(Settings(state_dir=tmp_path), "tiny", type(ctx)(ctx.catalog, fit, seed=0))
    data = TrainData("tiny", "given", world.catalog, fit, valid, None, 0, resolver)
    recall = {"channels": [{"type": "itemcf", "quota": 30}, {"type": "popularity", "quota": 10}]}
    config = {"recall": recall, "rank": {"type": "passthrough"}, "recall_k": 40, "rank_k": 20, "epochs": 3}
    job = quick_fit(build({**config, "holdout": 0.3}, data), 3)
    assert job.serving.channels == ["recall:itemcf#0", "recall:popularity#1"]
    assert job.model.mean.shape == (len(FEATURES) + 4,)
    served = job.export(tmp_path / "model")
    artifact = StageContext(world.catalog, fit, artifact=tmp_path / "model")
    stage = RankNetRerank(RankNetConfig(**served), artifact)
    r = world.requests[0]
    merged, _ = resolver.build("recall", {**recall, "k": 40})
    out = stage.rerank(r, merged.retrieve(r, 40)[:20], 10)
    assert 0 < len(out) <= 10
    other = RankNetConfig(**{**served, "channels": [*served["channels"], "recall:lightgcn#2"]})
    with pytest.raises(ConfigError, match=r"names 16 \(3 recall channels\)"):
        RankNetRerank(other, artifact)


def test_dropped_features_are_zero_and_unknown_names_are_refused() -> None:
    from replayrec.errors import ConfigError
    from replayrec_rerank_ranknet.config import RankNetTrainConfig
    from replayrec_rerank_ranknet.features import feature_columns

    ev = Interactions(np.array([0, 1]), np.array([0, 1]), np.array([1, 2]) * DAY, n_users=2, n_items=3)
    clock = ItemTimeline.from_interactions(ev)
    vecs = unit_vectors(np.eye(3))
    req = Request.create(0, 10 * DAY, [1], [2 * DAY])
    cands = [Candidate(0, 2.0, {"recall": 5.0, "din": 2.0}), Candidate(2, 1.0, {"recall": 1.0, "din": 1.0})]
    cols = feature_columns(["pop_all", "pop_recent", "rank_score"])
    assert cols == [FEATURES.index("rank_score"), FEATURES.index("pop_all"), FEATURES.index("pop_recent")]
    full = list_features(req, cands, clock, vecs, "din")
    dropped = list_features(req, cands, clock, vecs, "din", drop=cols)
    assert full[:, cols].any()
    assert not dropped[:, cols].any()
    others = [i for i in range(len(FEATURES)) if i not in cols]
    np.testing.assert_array_equal(dropped[:, others], full[:, others])
    with pytest.raises(ConfigError, match=r"unknown feature.*popularity"):
        feature_columns(["popularity"])
    with pytest.raises(ValueError, match="unknown feature"):
        RankNetTrainConfig(drop_features=["recency"])
    assert RankNetTrainConfig(drop_features=["age", "score:recall:itemcf#1"]).drop_features[0] == "age"


def test_shuffle_permutes_a_group_together_and_is_seeded() -> None:
    from replayrec_rerank_ranknet.features import shuffle_columns

    x = np.arange(40, dtype=np.float32).reshape(8, 5)
    a = shuffle_columns(x, [1, 3], [0, 7, 100])
    np.testing.assert_array_equal(a, shuffle_columns(x, [1, 3], [0, 7, 100]))
    assert not np.array_equal(a[:, 1], x[:, 1])
    np.testing.assert_array_equal(a[:, [0, 2, 4]], x[:, [0, 2, 4]], err_msg="the other columns stay")
    # the group moves as one: each row's (col 1, col 3) pair is some original row's pair
    pairs = {tuple(r) for r in x[:, [1, 3]].tolist()}
    assert {tuple(r) for r in a[:, [1, 3]].tolist()} == pairs
    assert not np.array_equal(a, shuffle_columns(x, [1, 3], [1, 7, 100])), "another seed, another order"


def test_a_model_trained_without_a_group_ignores_it_and_says_so(trained_job, tmp_path: Path) -> None:
    from replayrec_rerank_ranknet.train import build

    world, data, job = trained_job
    group = ["pop_all", "pop_recent", "age", "last_seen"]
    config = {**job.config.model_dump(), "drop_features": group, "epochs": 2}
    lean = quick_fit(build(config, data), 2)
    assert lean.serving.drop == group
    serving = dict(lean.export(tmp_path))
    assert serving["drop"] == group, "the serving config saved with the model holds the dropped features"
    stage = lean.stage()
    req = next(r for r in world.requests if r.history.size)
    cands = world.candidates(req)[:15]
    f = stage.features(req, cands)
    assert not f[:, [FEATURES.index(n) for n in group]].any()
    # shuffling the dropped group changes nothing; shuffling a used one changes the features
    same = RankNetRerank(stage.cfg.model_copy(update={"shuffle": group}), stage.context)
    np.testing.assert_array_equal(same.features(req, cands), f)
    used = ["rank_score", "recall", "position"]
    moved = RankNetRerank(stage.cfg.model_copy(update={"shuffle": used}), stage.context)
    g = moved.features(req, cands)
    assert not np.array_equal(g, f)
    assert sorted(g[:, 2].tolist()) == sorted(f[:, 2].tolist()), "the same values, among other candidates"


def test_ranknet_trains_behind_cores_three_channel_recall_by_default() -> None:
    from replayrec.cascade import ranker_recall
    from replayrec_rerank_ranknet.config import RankNetTrainConfig

    assert RankNetTrainConfig().recall == ranker_recall(), "the same recall as DIN's default"
