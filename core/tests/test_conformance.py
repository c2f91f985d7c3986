"""The contract checks as plain functions: each one stops a stage that breaks it (naming the check and the
numbers), passes the stand-in stages, runs without pytest, and still stops a broken stage under python -O."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest

from replayrec import conformance as cf
from replayrec import testing
from replayrec.errors import ContractViolation, PluginError, StageInputError
from replayrec.promotion import StageGate, stage_checks
from replayrec.stages import Candidate, FloatArray, Request, Stage, StageConfig, StageContext, topk_candidates
from replayrec.testing import FixedRecall, ReverseRank, TruncateRerank

WORLD = cf.tiny_world()
CFG = StageConfig()
Out = list[Candidate]
S = TypeVar("S", bound=Stage)


def _build(cls: type[Stage], seed: int = 0) -> Any:
    return cls(CFG, WORLD.context(seed=seed))


def _maker(cls: type[Stage]) -> cf.MakeStage:
    return lambda context: cls(CFG, context)


def _violates(check: str, match: str, fn: Callable[..., object], *args: Any) -> ContractViolation:
    """``fn(*args)`` raises a ContractViolation named ``check`` whose message matches ``match``."""
    with pytest.raises(ContractViolation, match=match) as info:
        fn(*args)
    assert info.value.check == check
    assert str(info.value).startswith(f"{check}: ")
    return info.value


def _patched(base: type[S], **attrs: Any) -> type[S]:
    """A subclass of ``base`` (same plugin name) with ``attrs`` replaced; methods take the stage first."""
    return cast(type[S], type(f"Broken{base.__name__}", (base,), attrs))


def _top(s: FixedRecall, r: Request, k: int) -> Out:
    return FixedRecall.retrieve(s, r, k)


def _last_is(out: Out, item: int | None = None) -> Out:
    """``out`` with its last item replaced by ``item`` (by default: the item before it, a duplicate)."""
    dup = out[-2].item if len(out) > 2 else 0
    return [*out[:-1], Candidate(dup if item is None else item, out[-1].score)] if len(out) > 2 else out


def _vague_k(s: FixedRecall, r: Request, k: int) -> Out:
    if k <= 0:
        raise StageInputError("bad value")
    return _top(s, r, k)


def _crash(s: FixedRecall, r: Request, k: int) -> Out:
    raise RuntimeError("kaput " * 200)


def _invent(s: TruncateRerank, r: Request, scored: Sequence[Candidate], k: int) -> Out:
    invented = next(i for i in range(s.n_items) if i not in {c.item for c in scored})
    return [*list(scored)[: k - 1], Candidate(invented, -9.0)]


def _nan_scores(s: FixedRecall, requests: Sequence[Request]) -> FloatArray:
    out = FixedRecall.score_all(s, requests)
    out[0, 3] = np.nan
    return out


class _Nondeterministic(FixedRecall):
    def __init__(self, config: StageConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.scores = np.random.default_rng().random(context.n_items)  # ignores the seed


# --- broken stages -------------------------------------------------------------------------------------
_TooMany = _patched(FixedRecall, retrieve=lambda s, r, k: _top(s, r, k + 2))
_Unsorted = _patched(FixedRecall, retrieve=lambda s, r, k: _top(s, r, k)[::-1])
_Duplicate = _patched(FixedRecall, retrieve=lambda s, r, k: _last_is(_top(s, r, k)))
_OutsideCatalogue = _patched(FixedRecall, retrieve=lambda s, r, k: _last_is(_top(s, r, k), s.n_items + 3))
_ReturnsExcluded = _patched(
    FixedRecall,
    retrieve=lambda s, r, k: [*(Candidate(int(i), 2.0) for i in r.exclude[:1]), *_top(s, r, k)][:k],
)
_AcceptsBadK = _patched(FixedRecall, retrieve=lambda s, r, k: [] if k <= 0 else _top(s, r, k))
_VagueK = _patched(FixedRecall, retrieve=_vague_k)
#: validates nothing: a malformed request crashes deep inside numpy instead
_Unchecked = _patched(FixedRecall, retrieve=lambda s, r, k: topk_candidates(s.scores, k, r.exclude, s.name))
_ColdUnsorted = _patched(FixedRecall, retrieve=lambda s, r, k: _top(s, r, k)[:: -1 if r.user == -1 else 1])
_FiltersHistory = _patched(
    FixedRecall, retrieve=lambda s, r, k: _top(s, Request.create(r.user, r.timestamp, r.history), k)
)
_Crashes = _patched(FixedRecall, retrieve=_crash)
_BatchDiffers = _patched(FixedRecall, retrieve_batch=lambda s, rs, k: [s.retrieve(r, k)[1:] for r in rs])
_NegatedFullScores = _patched(FixedRecall, score_all=lambda s, rs: -FixedRecall.score_all(s, rs))
_NaNFullScores = _patched(FixedRecall, score_all=_nan_scores)
_NotFullRanking = _patched(FixedRecall, supports_full_ranking=False)
_Nameless = _patched(FixedRecall, name="")

_DropsOne = _patched(ReverseRank, score=lambda s, r, c: ReverseRank.score(s, r, c)[:-1])
_RankUnsorted = _patched(ReverseRank, score=lambda s, r, c: ReverseRank.score(s, r, c)[::-1])
_InventsOne = _patched(ReverseRank, score=lambda s, r, c: ReverseRank.score(s, r, c) or [Candidate(0, 1.0)])
_TrustsCandidates = _patched(ReverseRank, score=lambda s, r, c: sorted(c, key=lambda x: -x.score))

_RerankTooMany = _patched(TruncateRerank, rerank=lambda s, r, c, k: list(c)[: k + 1])
_RerankInvents = _patched(TruncateRerank, rerank=_invent)
_RerankDuplicates = _patched(TruncateRerank, rerank=lambda s, r, c, k: [*list(c)[:1], *list(c)[: k - 1]])
_RerankAcceptsBadK = _patched(TruncateRerank, rerank=lambda s, r, c, k: list(c)[: max(k, 0)])
_RerankInventsOnEmpty = _patched(
    TruncateRerank, rerank=lambda s, r, c, k: TruncateRerank.rerank(s, r, c, k) or [Candidate(0, 1.0)]
)


# --- check functions -----------------------------------------------------------------------------------
def test_length_sorted_unique() -> None:
    check, fn = "recall.length_sorted_unique[k=10]", cf.check_length_sorted_unique
    for k in cf.RECALL_K:
        fn(_build(FixedRecall), WORLD, k)
    e = _violates(check, r"request user=0 returned 12 candidates for k=10", fn, _build(_TooMany), WORLD, 10)
    assert e.numbers == {"user": 0, "k": 10, "returned": 12}
    unsorted = r"request user=0: scores not non-increasing at position 1: 0\.\d+ < 0\.\d+"
    e = _violates(check, unsorted, fn, _build(_Unsorted), WORLD, 10)
    assert (e.numbers["position"], e.numbers["previous"] < e.numbers["score"]) == (1, True)
    _violates(check, r"returned item \d+ twice", fn, _build(_Duplicate), WORLD, 10)
    outside = r"returned item 83, outside the catalogue of 80 items"
    _violates(check, outside, fn, _build(_OutsideCatalogue), WORLD, 10)


def test_never_returns_excluded() -> None:
    cf.check_never_returns_excluded(_build(FixedRecall), WORLD)
    item = int(WORLD.requests[0].exclude[0])
    check, fn = "recall.never_returns_excluded", cf.check_never_returns_excluded
    returned = rf"request user=0: item {item} is excluded but was returned"
    assert _violates(check, returned, fn, _build(_ReturnsExcluded), WORLD).numbers["item"] == item


def test_empty_history_and_history_items_when_asked() -> None:
    cf.check_empty_history_is_served(_build(FixedRecall), WORLD)
    check, fn = "recall.empty_history_is_served", cf.check_empty_history_is_served
    _violates(check, r"user=-1: scores not non-increasing at position 1", fn, _build(_ColdUnsorted), WORLD)
    cf.check_history_items_allowed_when_asked(_build(FixedRecall), WORLD)
    n = 80 - np.unique(WORLD.requests[1].history).size
    check, fn = "recall.history_items_allowed_when_asked", cf.check_history_items_allowed_when_asked
    filtered = rf"user=10 with exclude_history=False returned {n} of 80 items"
    _violates(check, filtered, fn, _build(_FiltersHistory), WORLD)


def test_batch_and_full_scores_agree_with_retrieve() -> None:
    cf.check_batch_matches_single_requests(_build(FixedRecall), WORLD)
    check, fn = "recall.batch_matches_single_requests", cf.check_batch_matches_single_requests
    differ = r"user=0: 6 items .* differ from retrieve \(7 items .* at position 0"
    assert _violates(check, differ, fn, _build(_BatchDiffers), WORLD).numbers["position"] == 0
    full = cf.check_full_scores_agree_with_retrieve
    assert full(_build(FixedRecall), WORLD) is None
    assert full(_build(_NotFullRanking), WORLD) == "stage does not score the whole catalogue"
    check = "recall.full_scores_agree_with_retrieve"
    _violates(check, r"differ from the top 10 of score_all", full, _build(_NegatedFullScores), WORLD)
    _violates(check, r"holds 1 NaN scores \(first at \(0, 3\)\)", full, _build(_NaNFullScores), WORLD)


def test_declares_a_valid_plugin() -> None:
    fn = cf.check_declares_a_valid_plugin
    fn("recall", _build(FixedRecall))
    e = _violates("recall.declares_a_valid_plugin", "not declare a name", fn, "recall", _build(_Nameless))
    assert isinstance(e, PluginError)
    wrong = "not a subclass of replayrec.stages.Rank"
    _violates("rank.declares_a_valid_plugin", wrong, fn, "rank", _build(FixedRecall))


def test_rejects_a_malformed_request() -> None:
    for kind, cls in (("recall", FixedRecall), ("rank", ReverseRank), ("rerank", TruncateRerank)):
        cf.check_rejects_a_malformed_request(kind, _build(cls), WORLD)
    check, fn = "recall.rejects_a_malformed_request", cf.check_rejects_a_malformed_request
    crash = r"history holds item 85 of a 80-item catalogue: expected StageInputError, got IndexError"
    e = _violates(check, crash, fn, "recall", _build(_Unchecked), WORLD)
    assert e.numbers == {"expected": "StageInputError", "raised": "IndexError"}


def test_rejects_bad_k() -> None:
    fn = cf.check_rejects_bad_k
    assert fn("recall", _build(FixedRecall), WORLD) is None
    assert fn("rerank", _build(TruncateRerank), WORLD) is None
    assert fn("rank", _build(ReverseRank), WORLD) == "rank stages take no k"
    check = "recall.rejects_bad_k"
    accepted = r"k=0: expected StageInputError, but nothing was raised"
    _violates(check, accepted, fn, "recall", _build(_AcceptsBadK), WORLD)
    wrong = r"k=0: StageInputError message 'bad value' does not match 'k must be a positive integer'"
    _violates(check, wrong, fn, "recall", _build(_VagueK), WORLD)
    _violates("rerank.rejects_bad_k", "nothing was raised", fn, "rerank", _build(_RerankAcceptsBadK), WORLD)


def test_deterministic_under_a_seed() -> None:
    fn = cf.check_deterministic_under_a_seed
    fn("recall", _maker(FixedRecall), WORLD)
    differ = r"user=0: two stages built with seed 3 differ at position \d+: item \d+ \(.*\) vs item \d+"
    e = _violates("recall.deterministic_under_a_seed", differ, fn, "recall", _maker(_Nondeterministic), WORLD)
    assert e.numbers["user"] == 0
    assert e.numbers["lengths"] == [10, 10]


def test_rank_checks() -> None:
    good = _build(ReverseRank)
    cf.check_returns_the_same_items_sorted(good, WORLD)
    cf.check_empty_candidates(good, WORLD)
    cf.check_rejects_unknown_candidate(good, WORLD)
    check, fn = "rank.returns_the_same_items_sorted", cf.check_returns_the_same_items_sorted
    changed = r"user=0: 29 items returned for 30 candidates \(added or doubled: \[\], dropped: \[\d+\]\)"
    assert len(_violates(check, changed, fn, _build(_DropsOne), WORLD).numbers["dropped"]) == 1
    _violates(check, "scores not non-increasing at position 1", fn, _build(_RankUnsorted), WORLD)
    empty = "returned 1 candidates for an empty list"
    _violates("rank.empty_candidates", empty, cf.check_empty_candidates, _build(_InventsOne), WORLD)
    unknown = r"candidate item 81 of a 80-item catalogue: expected StageInputError, but nothing was raised"
    check, fn = "rank.rejects_unknown_candidate", cf.check_rejects_unknown_candidate
    _violates(check, unknown, fn, _build(_TrustsCandidates), WORLD)


def test_rerank_checks() -> None:
    check, fn = "rerank.subset_of_input_at_most_k[k=5]", cf.check_subset_of_input_at_most_k
    for k in cf.RERANK_K:
        fn(_build(TruncateRerank), WORLD, k)
    cf.check_empty_input(_build(TruncateRerank), WORLD)
    e = _violates(check, "request user=0 returned 6 candidates for k=5", fn, _build(_RerankTooMany), WORLD, 5)
    assert e.numbers == {"user": 0, "k": 5, "returned": 6}
    invented = r"user=0: item \d+ is not among the input candidates"
    _violates(check, invented, fn, _build(_RerankInvents), WORLD, 5)
    _violates(check, r"request user=0 returned item \d+ twice", fn, _build(_RerankDuplicates), WORLD, 5)
    empty = "returned 1 candidates for an empty list"
    _violates("rerank.empty_input", empty, cf.check_empty_input, _build(_RerankInventsOnEmpty), WORLD)


def test_expect_raises_names_the_wrong_outcome() -> None:
    def boom() -> None:
        raise KeyError("x")

    cf.expect_raises("c", KeyError, boom, match="x")
    _violates("c", "expected ValueError, got KeyError", cf.expect_raises, "c", ValueError, boom)
    _violates("c", "expected KeyError, but nothing was raised", cf.expect_raises, "c", KeyError, lambda: None)
    _violates("c", "does not match 'y'", cf.expect_raises, "c", KeyError, boom, "y")


def test_contract_violation_is_a_plugin_error_and_pickles() -> None:
    e = ContractViolation("recall.x[k=1]", "item 3 is excluded but was returned", {"item": 3})
    assert isinstance(e, PluginError)
    assert str(e) == "recall.x[k=1]: item 3 is excluded but was returned"
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.check, back.numbers) == (str(e), e.check, e.numbers)


# --- run_checks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "cls", "skipped"),
    [
        ("recall", FixedRecall, set()),
        ("recall", _NotFullRanking, {"recall.full_scores_agree_with_retrieve"}),
        ("rank", ReverseRank, {"rank.rejects_bad_k"}),
        ("rerank", TruncateRerank, set()),
    ],
)
def test_run_checks_passes_correct_stages(kind: str, cls: type[Stage], skipped: set[str]) -> None:
    results = cf.run_checks(kind, _maker(cls), WORLD)
    labels = [s.name + (f"[k={p['k']}]" if p else "") for s in cf.CHECKS[kind] for p in s.grid]
    assert [r.check for r in results] == labels
    assert {r.check for r in results if r.outcome == "skipped"} == skipped
    assert {r.outcome for r in results if r.check not in skipped} == {"passed"}
    assert [p["k"] for s in cf.CHECKS["recall"] for p in s.grid if p] == [1, 10, 10_000]
    assert [p["k"] for s in cf.CHECKS["rerank"] for p in s.grid if p] == [1, 5, 100]


def test_run_checks_never_raises_for_a_broken_stage() -> None:
    results = {r.check: r for r in cf.run_checks("recall", _maker(_ReturnsExcluded), WORLD)}
    bad = results["recall.never_returns_excluded"]
    assert bad.outcome == "failed"
    assert bad.detail.startswith("recall.never_returns_excluded: request user=0: item ")
    crashed = cf.run_checks("recall", _maker(_Crashes), WORLD)
    failed = {r.check: r.detail for r in crashed if r.outcome == "failed"}
    assert {"recall.length_sorted_unique[k=10]", "recall.never_returns_excluded"} <= set(failed)
    length = "recall.length_sorted_unique[k=10]"
    assert failed[length].startswith(f"{length}: RuntimeError: kaput")
    assert all(len(r.detail) <= 300 for r in crashed)


def test_run_checks_reports_a_stage_that_cannot_be_built() -> None:
    def make(c: StageContext) -> Stage:
        raise OSError("no artifact")

    assert [r.to_dict() for r in cf.run_checks("rank", make, WORLD)] == [
        {"check": "rank.builds", "outcome": "failed", "detail": "rank.builds: OSError: no artifact"}
    ]
    with pytest.raises(ValueError, match="unknown stage kind 'retrieve'"):
        cf.run_checks("retrieve", make, WORLD)


# --- the stage gate's pure function ----------------------------------------------------------------------
def test_stage_checks_pass_a_correct_stage_and_stop_a_broken_one() -> None:
    good = stage_checks("rerank", _maker(TruncateRerank), WORLD, WORLD, StageGate(), source="x.npz")
    assert [(c.name, c.passed) for c in good] == [
        ("loads through the serving contract", True),
        ("rerank contract suite", True),
        ("p99 scoring latency ≤ 10.0 ms", True),
    ]
    assert good[0].detail == "TruncateRerank from x.npz"
    bad = stage_checks("recall", _maker(_ReturnsExcluded), WORLD, WORLD, StageGate())
    assert not bad[1].passed
    assert "recall.never_returns_excluded: request user=0: item " in bad[1].detail
    wrong = stage_checks("rank", _maker(FixedRecall), WORLD, WORLD, StageGate())
    assert [(c.name, c.passed) for c in wrong] == [("loads through the serving contract", False)]
    assert "PluginError" in wrong[0].detail


_OPTIMISED = """
import json
from replayrec.conformance import tiny_world
from replayrec.promotion import StageGate, stage_checks
from replayrec.stages import Candidate, Recall, StageConfig
print(json.dumps({"debug": __debug__}))

class Broken(Recall):  # the first k items, excluded or not, in ascending score order
    name = "broken"
    def retrieve(self, request, k):
        self.check_request(request)
        self.check_k(k)
        return [Candidate(i, float(i)) for i in range(min(k, self.n_items))]

checks = stage_checks("recall", lambda c: Broken(StageConfig(), c), tiny_world(), tiny_world(1), StageGate())
print(json.dumps([c.to_dict() for c in checks]))
"""


def test_stage_gate_stops_a_broken_stage_under_python_optimised(tmp_path: Path) -> None:
    script = tmp_path / "gate.py"
    script.write_text(_OPTIMISED)
    proc = subprocess.run(
        [sys.executable, "-O", str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(first) == {"debug": False}, "asserts are stripped in the subprocess"
    checks = {c["name"]: c for c in json.loads(second)}
    assert checks["loads through the serving contract"]["passed"] is True
    contract = checks["recall contract suite"]
    assert contract["passed"] is False
    assert (
        "recall.length_sorted_unique[k=10]: request user=0: scores not non-increasing" in contract["detail"]
    )
    failed = {r["check"] for r in contract["numbers"]["results"] if r["outcome"] == "failed"}
    assert {"recall.never_returns_excluded", "recall.length_sorted_unique[k=10]"} <= failed


def test_the_gate_imports_without_pytest() -> None:
    script = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"
        "import replayrec.conformance, replayrec.promotion\n"
        "from replayrec.promotion import stage_checks\n"
        "assert sys.modules['pytest'] is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('_pytest', 'replayrec.testing'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- the pytest suites wrap the same checks --------------------------------------------------------------
class TestFixedRecallContract(testing.RecallContract):
    @pytest.fixture
    def make_stage(self) -> cf.MakeStage:
        return lambda ctx: FixedRecall(CFG, ctx)


class TestReverseRankContract(testing.RankContract):
    @pytest.fixture
    def make_stage(self) -> cf.MakeStage:
        return lambda ctx: ReverseRank(CFG, ctx)


class TestTruncateRerankContract(testing.RerankContract):
    @pytest.fixture
    def make_stage(self) -> cf.MakeStage:
        return lambda ctx: TruncateRerank(CFG, ctx)
