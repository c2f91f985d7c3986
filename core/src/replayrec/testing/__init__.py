"""The test kit shipped with core: contract suites, a tiny world and stand-in stages.

Importing :mod:`replayrec.testing` requires pytest (``pip install replayrec-core[testing]``)."""

from replayrec.testing._cli import run_cli
from replayrec.testing._contract import RankContract, RecallContract, RerankContract
from replayrec.testing._fit import quick_fit
from replayrec.testing._stages import FixedRecall, ReverseRank, TruncateRerank
from replayrec.testing._suite import SuiteResult, run_contract_suite
from replayrec.testing._world import TinyWorld, tiny_world

__all__ = [
    "FixedRecall",
    "RankContract",
    "RecallContract",
    "RerankContract",
    "ReverseRank",
    "SuiteResult",
    "TinyWorld",
    "TruncateRerank",
    "quick_fit",
    "run_cli",
    "run_contract_suite",
    "tiny_world",
]
