"""Stage conformance: the contract every recall, rank and rerank stage must honour, as plain functions.

Each ``check_*`` function raises :class:`~replayrec.errors.ContractViolation` (naming the check and the
numbers) when the stage breaks the contract, returns a skip reason (``str``) when the check does not apply
to the stage, and ``None`` when it passes. They use ``if … raise``, never ``assert``, so they hold under
``python -O``, and they need no pytest: the *stage* promotion gate runs them through :func:`run_checks`,
and the pytest suites in :mod:`replayrec.testing` wrap them for plugins' tests.

Common checks take the stage kind first (``check_rejects_bad_k("rerank", stage, world)``); kind-specific
ones take the stage and the world (``check_length_sorted_unique(stage, world, k)``).
"""

from replayrec.conformance._common import (
    check_declares_a_valid_plugin,
    check_deterministic_under_a_seed,
    check_rejects_a_malformed_request,
    check_rejects_bad_k,
)
from replayrec.conformance._lists import (
    RERANK_K,
    check_empty_candidates,
    check_empty_input,
    check_rejects_unknown_candidate,
    check_returns_the_same_items_sorted,
    check_subset_of_input_at_most_k,
)
from replayrec.conformance._recall import (
    RECALL_K,
    check_batch_matches_single_requests,
    check_empty_history_is_served,
    check_full_scores_agree_with_retrieve,
    check_history_items_allowed_when_asked,
    check_length_sorted_unique,
    check_never_returns_excluded,
)
from replayrec.conformance._registry import (
    CHECKS,
    CheckResult,
    CheckTarget,
    ContractCheck,
    Outcome,
    run_checks,
)
from replayrec.conformance._support import MakeStage, expect_raises
from replayrec.conformance._world import TinyWorld, tiny_world
from replayrec.errors import ContractViolation

__all__ = [
    "CHECKS",
    "RECALL_K",
    "RERANK_K",
    "CheckResult",
    "CheckTarget",
    "ContractCheck",
    "ContractViolation",
    "MakeStage",
    "Outcome",
    "TinyWorld",
    "check_batch_matches_single_requests",
    "check_declares_a_valid_plugin",
    "check_deterministic_under_a_seed",
    "check_empty_candidates",
    "check_empty_history_is_served",
    "check_empty_input",
    "check_full_scores_agree_with_retrieve",
    "check_history_items_allowed_when_asked",
    "check_length_sorted_unique",
    "check_never_returns_excluded",
    "check_rejects_a_malformed_request",
    "check_rejects_bad_k",
    "check_rejects_unknown_candidate",
    "check_returns_the_same_items_sorted",
    "check_subset_of_input_at_most_k",
    "expect_raises",
    "run_checks",
    "tiny_world",
]
