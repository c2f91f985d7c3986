"""Contract suites every stage plugin runs.

Subclass the suite for your stage kind in the plugin's tests and provide a ``make_stage`` fixture returning
``f(context) -> stage``::

    class TestMyRecall(RecallContract):
        @pytest.fixture
        def make_stage(self):
            return lambda ctx: MyRecall(MyRecall.Config(), ctx)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from replayrec.errors import StageInputError
from replayrec.plugins import check_stage_class
from replayrec.stages import Candidate, Rank, Recall, Request, Rerank, Stage, StageContext, topk_candidates
from replayrec.testing._world import TinyWorld, tiny_world

__all__ = ["RankContract", "RecallContract", "RerankContract"]

MakeStage = Callable[[StageContext], Any]


def _sorted(cands: list[Candidate]) -> bool:
    s = [c.score for c in cands]
    return all(a >= b for a, b in itertools.pairwise(s))


class _Common:
    kind = ""

    @pytest.fixture
    def world(self) -> TinyWorld:
        return tiny_world()

    @pytest.fixture
    def make_stage(self) -> MakeStage:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a make_stage fixture")

    @pytest.fixture
    def stage(self, make_stage: MakeStage, world: TinyWorld) -> Stage:
        st = make_stage(world.context(seed=0))
        st.warmup()
        return st  # type: ignore[no-any-return]

    def test_declares_a_valid_plugin(self, stage: Stage) -> None:
        check_stage_class(self.kind, type(stage))

    def test_rejects_a_malformed_request(self, stage: Stage, world: TinyWorld) -> None:
        bad = Request.create(0, 0, [world.catalog.n_items + 5])
        with pytest.raises(StageInputError, match="outside the catalogue"):
            self._call(stage, bad, world, 5)
        with pytest.raises(StageInputError):
            self._call(stage, "not a request", world, 5)

    def test_rejects_bad_k(self, stage: Stage, world: TinyWorld) -> None:
        if self.kind == "rank":
            pytest.skip("rank stages take no k")
        for k in (0, -3):
            with pytest.raises(StageInputError, match="k must be a positive integer"):
                self._call(stage, world.requests[0], world, k)

    def test_deterministic_under_a_seed(self, make_stage: MakeStage, world: TinyWorld) -> None:
        a, b = make_stage(world.context(seed=3)), make_stage(world.context(seed=3))
        for r in world.requests:
            ra, rb = self._call(a, r, world, 10), self._call(b, r, world, 10)
            assert [(c.item, round(c.score, 9)) for c in ra] == [(c.item, round(c.score, 9)) for c in rb]

    def _call(self, stage: Any, request: Any, world: TinyWorld, k: int) -> list[Candidate]:
        raise NotImplementedError


class RecallContract(_Common):
    kind = "recall"

    def _call(self, stage: Any, request: Any, world: TinyWorld, k: int) -> list[Candidate]:
        return stage.retrieve(request, k)  # type: ignore[no-any-return]

    @pytest.mark.parametrize("k", [1, 10, 10_000])
    def test_length_sorted_unique_within_catalogue(self, stage: Recall, world: TinyWorld, k: int) -> None:
        for r in world.requests:
            out = stage.retrieve(r, k)
            assert len(out) <= k
            assert _sorted(out), "scores must be non-increasing"
            items = [c.item for c in out]
            assert len(set(items)) == len(items), "duplicate items"
            assert all(0 <= i < world.catalog.n_items for i in items)

    def test_never_returns_excluded_items(self, stage: Recall, world: TinyWorld) -> None:
        for r in world.requests:
            excluded = set(r.exclude.tolist())
            assert not excluded & {c.item for c in stage.retrieve(r, 50)}

    def test_empty_history_is_served(self, stage: Recall, world: TinyWorld) -> None:
        out = stage.retrieve(Request.create(-1, int(world.train.timestamp.max())), 5)
        assert len(out) <= 5
        assert _sorted(out)

    def test_history_items_allowed_when_asked(self, stage: Recall, world: TinyWorld) -> None:
        r = world.requests[1]
        asked = Request.create(r.user, r.timestamp, r.history, r.history_times, exclude_history=False)
        out = stage.retrieve(asked, world.catalog.n_items)
        assert len(out) <= world.catalog.n_items
        if stage.supports_full_ranking:  # nothing may be filtered on the stage's own initiative
            assert len(out) == world.catalog.n_items
            assert set(r.history.tolist()) <= {c.item for c in out}

    def test_batch_matches_single_requests(self, stage: Recall, world: TinyWorld) -> None:
        batch = stage.retrieve_batch(world.requests, 7)
        assert [[c.item for c in b] for b in batch] == [
            [c.item for c in stage.retrieve(r, 7)] for r in world.requests
        ]

    def test_full_scores_agree_with_retrieve(self, stage: Recall, world: TinyWorld) -> None:
        if not stage.supports_full_ranking:
            pytest.skip("stage does not score the whole catalogue")
        scores = np.asarray(stage.score_all(world.requests))
        assert scores.shape == (len(world.requests), world.catalog.n_items)
        assert not np.isnan(scores).any()
        for row, r in zip(scores, world.requests, strict=True):
            expect = [c.item for c in topk_candidates(row, 10, r.exclude, "x")]
            assert [c.item for c in stage.retrieve(r, 10)] == expect


class RankContract(_Common):
    kind = "rank"

    def _call(self, stage: Any, request: Any, world: TinyWorld, k: int) -> list[Candidate]:
        cands = world.candidates(request) if isinstance(request, Request) else []
        return stage.score(request, cands)  # type: ignore[no-any-return]

    def test_returns_the_same_items_sorted(self, stage: Rank, world: TinyWorld) -> None:
        for r in world.requests:
            cands = world.candidates(r)
            out = stage.score(r, cands)
            assert sorted(c.item for c in out) == sorted(c.item for c in cands)
            assert _sorted(out)

    def test_empty_candidates(self, stage: Rank, world: TinyWorld) -> None:
        assert stage.score(world.requests[0], []) == []

    def test_rejects_unknown_candidate(self, stage: Rank, world: TinyWorld) -> None:
        with pytest.raises(StageInputError):
            stage.score(world.requests[0], [Candidate(world.catalog.n_items + 1, 1.0)])


class RerankContract(_Common):
    kind = "rerank"

    def _call(self, stage: Any, request: Any, world: TinyWorld, k: int) -> list[Candidate]:
        cands = world.candidates(request) if isinstance(request, Request) else []
        return stage.rerank(request, cands, k)  # type: ignore[no-any-return]

    @pytest.mark.parametrize("k", [1, 5, 100])
    def test_subset_of_input_at_most_k(self, stage: Rerank, world: TinyWorld, k: int) -> None:
        for r in world.requests:
            cands = world.candidates(r)
            out = stage.rerank(r, cands, k)
            assert len(out) <= k
            assert {c.item for c in out} <= {c.item for c in cands}
            assert len({c.item for c in out}) == len(out)

    def test_empty_input(self, stage: Rerank, world: TinyWorld) -> None:
        assert stage.rerank(world.requests[0], [], 5) == []
