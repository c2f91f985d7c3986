"""Contract suites every stage plugin runs: pytest wrappers around :mod:`replayrec.conformance`.

Subclass the suite for your stage kind in the plugin's tests and provide a ``make_stage`` fixture returning
``f(context) -> stage``::

    class TestMyRecall(RecallContract):
        @pytest.fixture
        def make_stage(self):
            return lambda ctx: MyRecall(MyRecall.Config(), ctx)

Each test calls one check function: a violation raises :class:`~replayrec.errors.ContractViolation`
(pytest shows its message), a check that does not apply to the stage is skipped with its reason.
"""

from __future__ import annotations

import pytest

from replayrec import conformance as cf
from replayrec.conformance import MakeStage, TinyWorld, tiny_world
from replayrec.stages import Rank, Recall, Rerank, Stage

__all__ = ["RankContract", "RecallContract", "RerankContract"]


def _skip_if(reason: str | None) -> None:
    if reason is not None:
        pytest.skip(reason)


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
        return st

    def test_declares_a_valid_plugin(self, stage: Stage) -> None:
        cf.check_declares_a_valid_plugin(self.kind, stage)

    def test_rejects_a_malformed_request(self, stage: Stage, world: TinyWorld) -> None:
        cf.check_rejects_a_malformed_request(self.kind, stage, world)

    def test_rejects_bad_k(self, stage: Stage, world: TinyWorld) -> None:
        _skip_if(cf.check_rejects_bad_k(self.kind, stage, world))

    def test_deterministic_under_a_seed(self, make_stage: MakeStage, world: TinyWorld) -> None:
        cf.check_deterministic_under_a_seed(self.kind, make_stage, world)


class RecallContract(_Common):
    """The :class:`~replayrec.stages.Recall` contract (see :mod:`replayrec.conformance`)."""

    kind = "recall"

    @pytest.mark.parametrize("k", cf.RECALL_K)
    def test_length_sorted_unique_within_catalogue(self, stage: Recall, world: TinyWorld, k: int) -> None:
        cf.check_length_sorted_unique(stage, world, k)

    def test_never_returns_excluded_items(self, stage: Recall, world: TinyWorld) -> None:
        cf.check_never_returns_excluded(stage, world)

    def test_empty_history_is_served(self, stage: Recall, world: TinyWorld) -> None:
        cf.check_empty_history_is_served(stage, world)

    def test_history_items_allowed_when_asked(self, stage: Recall, world: TinyWorld) -> None:
        cf.check_history_items_allowed_when_asked(stage, world)

    def test_batch_matches_single_requests(self, stage: Recall, world: TinyWorld) -> None:
        cf.check_batch_matches_single_requests(stage, world)

    def test_full_scores_agree_with_retrieve(self, stage: Recall, world: TinyWorld) -> None:
        _skip_if(cf.check_full_scores_agree_with_retrieve(stage, world))


class RankContract(_Common):
    """The :class:`~replayrec.stages.Rank` contract (see :mod:`replayrec.conformance`)."""

    kind = "rank"

    def test_returns_the_same_items_sorted(self, stage: Rank, world: TinyWorld) -> None:
        cf.check_returns_the_same_items_sorted(stage, world)

    def test_empty_candidates(self, stage: Rank, world: TinyWorld) -> None:
        cf.check_empty_candidates(stage, world)

    def test_rejects_unknown_candidate(self, stage: Rank, world: TinyWorld) -> None:
        cf.check_rejects_unknown_candidate(stage, world)


class RerankContract(_Common):
    """The :class:`~replayrec.stages.Rerank` contract (see :mod:`replayrec.conformance`)."""

    kind = "rerank"

    @pytest.mark.parametrize("k", cf.RERANK_K)
    def test_subset_of_input_at_most_k(self, stage: Rerank, world: TinyWorld, k: int) -> None:
        cf.check_subset_of_input_at_most_k(stage, world, k)

    def test_empty_input(self, stage: Rerank, world: TinyWorld) -> None:
        cf.check_empty_input(stage, world)
