"""The pytest test kit shipped with core: contract suites for plugins' tests, a tiny world and stand-in
stages.

The suites (:class:`RecallContract`, :class:`RankContract`, :class:`RerankContract`) wrap the plain check
functions of :mod:`replayrec.conformance`; code that checks a stage outside pytest (the *stage* promotion
gate) uses :func:`replayrec.conformance.run_checks` directly. :class:`TinyWorld` and :func:`tiny_world` are
re-exported from :mod:`replayrec.conformance`.

Importing :mod:`replayrec.testing` requires pytest (``pip install replayrec-core[testing]``)."""

from replayrec.conformance import TinyWorld, tiny_world
from replayrec.testing._cli import run_cli
from replayrec.testing._contract import RankContract, RecallContract, RerankContract
from replayrec.testing._fit import quick_fit
from replayrec.testing._http import JsonEndpoint, json_endpoint
from replayrec.testing._stages import FixedRecall, ReverseRank, TruncateRerank

__all__ = [
    "FixedRecall",
    "JsonEndpoint",
    "RankContract",
    "RecallContract",
    "RerankContract",
    "ReverseRank",
    "TinyWorld",
    "TruncateRerank",
    "json_endpoint",
    "quick_fit",
    "run_cli",
    "tiny_world",
]
