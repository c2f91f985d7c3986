"""Core's contract suite, run against every configuration of the baselines."""

from __future__ import annotations

import pytest

from replayrec.testing import RecallContract
from replayrec_baselines import ItemCF, Popularity


class TestPopularityAllTime(RecallContract):
    @pytest.fixture
    def make_stage(self):
        return lambda ctx: Popularity(Popularity.Config(), ctx)


class TestPopularityRecent(RecallContract):
    @pytest.fixture
    def make_stage(self):
        return lambda ctx: Popularity(Popularity.Config(mode="recent", window_days=3), ctx)


@pytest.mark.parametrize("algorithm", ["itemknn", "rp3beta", "ease"])
class TestItemCF(RecallContract):
    @pytest.fixture
    def make_stage(self, algorithm: str):
        return lambda ctx: ItemCF(ItemCF.Config(algorithm=algorithm, neighbours=20, ease_lambda=10.0), ctx)
