"""Signature tests: the stage contracts cannot drift without this test changing too."""

from __future__ import annotations

import inspect

from replayrec.stages import Rank, Recall, Rerank


def _sig(cls: type, method: str) -> str:
    return str(inspect.signature(getattr(cls, method)))


def test_required_methods_are_exactly_these() -> None:
    assert Recall.__abstractmethods__ == frozenset({"retrieve"})
    assert Rank.__abstractmethods__ == frozenset({"score"})
    assert Rerank.__abstractmethods__ == frozenset({"rerank"})


def test_signatures() -> None:
    assert _sig(Recall, "retrieve") == "(self, request: 'Request', k: 'int') -> 'list[Candidate]'"
    assert (
        _sig(Recall, "retrieve_batch")
        == "(self, requests: 'Sequence[Request]', k: 'int') -> 'list[list[Candidate]]'"
    )
    assert _sig(Recall, "score_all") == "(self, requests: 'Sequence[Request]') -> 'FloatArray'"
    assert (
        _sig(Rank, "score")
        == "(self, request: 'Request', candidates: 'Sequence[Candidate]') -> 'list[Candidate]'"
    )
    assert _sig(Rerank, "rerank") == (
        "(self, request: 'Request', scored: 'Sequence[Candidate]', k: 'int') -> 'list[Candidate]'"
    )
    for cls in (Recall, Rank, Rerank):
        assert _sig(cls, "__init__") == "(self, config: 'StageConfig', context: 'StageContext') -> 'None'"
        assert _sig(cls, "warmup") == "(self) -> 'None'"
        assert _sig(cls, "close") == "(self) -> 'None'"
