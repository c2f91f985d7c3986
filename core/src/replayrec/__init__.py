"""replayrec core: stage contracts, plugin loading, data, evaluation.

Import cost is kept low on purpose: nothing heavy is imported here.
"""

from importlib.metadata import PackageNotFoundError, version

from replayrec.errors import ReplayrecError

try:
    __version__ = version("replayrec-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

#: Version of the stage contract. Plugins declare the ``core_api`` they were built for; the loader accepts
#: the same major version and a minor version no newer than this one.
CORE_API = "1.0"

__all__ = ["CORE_API", "ReplayrecError", "__version__"]
