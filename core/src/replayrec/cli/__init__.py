"""The ``replayrec`` command line."""

from replayrec.cli._main import cli, main

__all__ = ["cli", "main"]
