"""LightGCN recall plugin for replayrec.

Importing the package imports nothing heavy: the serving stage is in ``stage``, training in ``train``."""

__all__: list[str] = []
