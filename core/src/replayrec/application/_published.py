"""Published results on exactly the shared data files (``../shared/data/README.md``), measured elsewhere
under the protocol named there (without masking consumed items): shown beside the unmasked rows."""

from __future__ import annotations

__all__ = ["PUBLISHED"]

PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "amazon-books-2014-1m": {
        "SASRec++ (published)": {"ndcg@10": 0.0301, "hr@10": 0.0664},
        "HSTU (published)": {"ndcg@10": 0.0327, "hr@10": 0.0572},
        "SPRINT, KDD 2026 (published)": {"ndcg@10": 0.0389, "hr@10": 0.0709},
    },
    "amazon-book-kgat": {
        "BPR-MF (published)": {"recall@20": 0.1244, "ndcg@20": 0.0658},
        "LightGCN (published)": {"recall@20": 0.1398, "ndcg@20": 0.0736},
        "SGL (published)": {"recall@20": 0.1445, "ndcg@20": 0.0766},
    },
}
