"""replayrec rank plugin: Deep Interest Network (Zhou et al., KDD 2018)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("replayrec-rank-din")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
