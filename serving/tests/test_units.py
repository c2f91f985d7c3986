"""Fast checks of the serving pieces that need no model or server: the budgeted cascade run and its fallbacks,
explanations, the experiment (validation, the split, the hash the pipeline uses), per-arm numbers in Redis,
the settings, the admin check."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from replayrec.cascade import Cascade, CascadeConfig, MergedRecall
from replayrec.data import Catalog
from replayrec.errors import ConfigError
from replayrec.promotion import canary_bucket
from replayrec.stages import Candidate, Request, StageConfig, StageContext
from replayrec.testing import FixedRecall, ReverseRank, TruncateRerank
from replayrec_serving import Experiment, ExperimentStore, ServiceSettings, bucket
from replayrec_serving._deps import admin
from replayrec_serving._engine import LoadedArm, explain, popularity_candidates, run_cascade
from replayrec_serving._metrics import ArmStats, summarise
from replayrec_serving._settings import FaultSpec

N_ITEMS = 60
LAYOUT = {
    "recall": {"k": 30, "channels": [{"type": "fixed"}]},
    "rank": {"type": "reverse", "k": 20},
    "rerank": {"type": "truncate", "k": 10},
}


def _arm() -> LoadedArm:
    catalog = Catalog.anonymous(N_ITEMS, n_groups=4)
    ctx = StageContext(catalog=catalog, seed=3)
    config = CascadeConfig.from_mapping(LAYOUT)
    recall = MergedRecall([FixedRecall(StageConfig(), ctx)], config.recall.channels, 30, "quota", ctx)
    cascade = Cascade(
        recall, ReverseRank(StageConfig(), ctx), TruncateRerank(StageConfig(), ctx), config, catalog
    )
    vectors = np.random.default_rng(0).standard_normal((N_ITEMS, 8))
    return LoadedArm("prod", cascade, {"fixed": "v1"}, "key1", vectors=vectors)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as p:
        yield p


def _fallback(req: Request, n: int) -> list[Candidate]:
    return popularity_candidates(list(range(N_ITEMS)), [float(N_ITEMS - i) for i in range(N_ITEMS)], set(), n)


REQ = Request.create(-1, 1000, [1, 2, 3])


def test_every_stage_runs_when_healthy(pool) -> None:
    arm = _arm()
    out = run_cascade(arm, REQ, 10, pool, {"recall": 1e4, "rank": 1e4, "rerank": 1e4}, _fallback)
    assert [s.status for s in out.stages] == ["ok", "ok", "ok"]
    assert not out.degraded
    assert [c.item for c in out.items] == [c.item for c in arm.cascade.recommend(REQ, 10)]
    assert not {1, 2, 3} & {c.item for c in out.items}


def test_a_slow_rank_stage_is_dropped_for_the_previous_order(pool) -> None:
    arm = _arm()
    faults = {"rank": FaultSpec(delay_ms=300)}
    t0 = time.perf_counter()
    out = run_cascade(arm, REQ, 10, pool, {"recall": 1e4, "rank": 30, "rerank": 1e4}, _fallback, faults)
    assert time.perf_counter() - t0 < 0.28  # the answer did not wait for the slow stage
    assert [s.status for s in out.stages] == ["ok", "timeout", "ok"]
    recall_top = [c.item for c in arm.cascade.recall.retrieve(REQ, 30)][:10]
    assert [c.item for c in out.items] == recall_top  # the recall order, not the reversed one
    assert out.degraded


def test_a_failing_stage_falls_back_and_a_failing_recall_uses_popularity(pool) -> None:
    arm = _arm()
    out = run_cascade(
        arm, REQ, 10, pool, {}, _fallback, {"rerank": FaultSpec(error_rate=1.0)}, random.Random(0)
    )
    assert out.stages[2].status == "error"
    assert "injected" in out.stages[2].detail
    ranked = arm.cascade.rank.score(REQ, arm.cascade.recall.retrieve(REQ, 30))[:10]
    assert [c.item for c in out.items] == [c.item for c in ranked]
    out = run_cascade(
        arm, REQ, 10, pool, {}, _fallback, {"recall": FaultSpec(error_rate=1.0)}, random.Random(0)
    )
    assert [s.status for s in out.stages] == ["error", "skipped", "ok"]
    assert [c.item for c in out.items] == list(range(10))  # the popularity fallback, as the rerank kept it


def test_explanations_name_a_history_item_and_the_moves(pool) -> None:
    arm = _arm()
    out = run_cascade(arm, REQ, 5, pool, {}, _fallback)
    why = explain(out, REQ, arm.cascade.catalog, arm.vectors)
    assert len(why) == 5
    titles = {arm.cascade.catalog.title(i) for i in (1, 2, 3)}
    for row, cand in zip(why, out.items, strict=True):
        assert row["reasons"][0].removeprefix("because you read ") in titles
        assert row["stages"]["fixed"] == pytest.approx(cand.scores["fixed"], abs=1e-6)
        assert row["recall_position"] >= 1
    cold = explain(out, Request.create(-1, 0), arm.cascade.catalog, arm.vectors)
    assert cold[0]["reasons"][0] == "popular right now"


def test_the_experiment_split_is_deterministic_weighted_and_the_pipelines_hash() -> None:
    arm = {"recall": {"type": "popularity"}}
    exp = Experiment.parse(
        {"name": "swap", "salt": "s1", "arms": [{"name": "a", "weight": 3, "cascade": arm},
                                                {"name": "b", "weight": 1, "cascade": arm}]}
    )  # fmt: skip
    users = [f"u{i}" for i in range(4000)]
    picks = [exp.arm_for(u) for u in users]
    assert picks == [exp.arm_for(u) for u in users]
    assert 0.72 < picks.count("a") / len(picks) < 0.78
    assert bucket(17, "replayrec-canary") == canary_bucket(17, "replayrec-canary")
    other = exp.model_copy(update={"salt": "s2"})
    assert sum(p != other.arm_for(u) for p, u in zip(picks, users, strict=True)) > 500


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"name": "x", "salt": "s", "arms": []}, "arms"),
        (
            {"name": "x", "salt": "s", "arms": [{"name": "a", "cascade": {"rank": {"type": "din", "k": 5}}}]},
            "recall",
        ),
        (
            {"name": "bad name!", "salt": "s", "arms": [{"name": "a", "cascade": {"recall": {"type": "p"}}}]},
            "name",
        ),
        (
            {"name": "x", "salt": "s", "arms": [{"name": "a", "cascade": {"recall": {"type": "p"}}}] * 2},
            "unique",
        ),
    ],
)
def test_bad_experiments_are_refused_with_the_reason(data, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        Experiment.parse(data)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        c.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable on 127.0.0.1:6379 (CI starts it): {exc}")
    yield c
    c.close()


@pytest.mark.integration
def test_experiments_and_arm_numbers_round_trip_through_redis(client) -> None:
    ns = f"test-serve-{uuid.uuid4().hex[:8]}"
    try:
        store = ExperimentStore(client, ns)
        assert store.get() is None
        exp = Experiment.parse(
            {"name": "e", "salt": "s", "arms": [{"name": "a", "cascade": {"recall": {"type": "p"}}}]}
        )
        stored = store.set(exp)
        assert stored.updated_ms > 0
        assert store.get() == stored
        stats = ArmStats(client, ns)
        for ms in [1.5] * 98 + [40.0, 900.0]:
            stats.record("prod", "k1", ms, error=ms > 500, degraded=False)
        stats.add("prod", events=10, hits=3, impressions=20, clicks=2)
        got = stats.read()["prod"]
        assert (got["requests"], got["errors"], got["hits"], got["events"]) == (100, 1, 3, 10)
        assert got["hr"] == pytest.approx(0.3)
        assert got["ctr"] == pytest.approx(0.1)
        assert 1 <= got["p50_ms"] <= 2
        assert 30 <= got["p99_ms"] <= 1000
        stats.reset("prod", "k2")  # a new model key starts from zero
        assert stats.read()["prod"]["requests"] == 0
        assert store.clear()
        assert store.get() is None
    finally:
        for key in client.scan_iter(match=f"{ns}:*"):
            client.delete(key)


def test_bucket_quantiles_interpolate_like_prometheus() -> None:
    s = summarise({"requests": "4", "lat:2": "2", "lat:10": "2"})
    assert s["p50_ms"] == pytest.approx(2.0)
    assert 2 < s["p99_ms"] <= 10
    assert summarise({})["p99_ms"] is None
    assert summarise({})["hr"] is None


def test_settings_read_nested_faults_budgets_and_origins_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("REPLAYREC_FAULTS", '{"rank": {"delay_ms": 5}}')
    monkeypatch.setenv("REPLAYREC_BUDGET_MS", '{"recall": 10, "rank": 20, "rerank": 5}')
    monkeypatch.setenv("REPLAYREC_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("REPLAYREC_ADMIN_TOKEN", "s3cret")
    s = ServiceSettings()
    assert s.faults["rank"].delay_ms == 5
    assert s.budget_ms["rank"] == 20
    assert s.cors_origins == ["http://a.example", "http://b.example"]
    monkeypatch.setenv("REPLAYREC_CORS_ORIGINS", '["http://c.example"]')
    assert ServiceSettings().cors_origins == ["http://c.example"]
    assert s.admin_secret() == b"s3cret"
    assert "s3cret" not in repr(s)
    assert s.host == "127.0.0.1"
    monkeypatch.setenv("REPLAYREC_FAULTS", '{"ranker": {"delay_ms": 5}}')
    with pytest.raises(ValueError, match="faults"):
        ServiceSettings()


def test_the_admin_check_needs_the_token_and_is_off_without_one() -> None:
    def app_with(token: str | None) -> TestClient:
        app = FastAPI()
        app.state.settings = ServiceSettings(admin_token=token)

        @app.post("/admin", dependencies=[__import__("fastapi").Depends(admin)])
        def _admin() -> dict[str, bool]:
            return {"ok": True}

        return TestClient(app)

    c = app_with("tok")
    assert c.post("/admin").status_code == 401
    assert c.post("/admin", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.post("/admin", headers={"Authorization": "Bearer tok"}).json() == {"ok": True}
    assert c.post("/admin").headers["www-authenticate"] == "Bearer"
    off = app_with(None)
    assert off.post("/admin", headers={"Authorization": "Bearer tok"}).status_code == 403
