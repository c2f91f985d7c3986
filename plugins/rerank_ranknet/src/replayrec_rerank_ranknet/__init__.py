"""replayrec rerank plugin: RankNet (Burges et al., ICML 2005) over per-candidate features."""

__all__: list[str] = []
