"""ETL from the public Amazon formats to raw interaction frames, and the filters applied to them.

A raw frame has columns ``user_raw`` (str), ``item_raw`` (str), ``rating`` (float, NaN when absent),
``timestamp`` (int64 Unix seconds) and ``src`` (row number in the source, the deterministic tie-break).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from replayrec.errors import DataError

__all__ = [
    "EtlConfig",
    "apply_filters",
    "k_core",
    "read_ratings_csv",
    "read_reviews_json",
]

RAW_COLUMNS = ["user_raw", "item_raw", "rating", "timestamp", "src"]


class EtlConfig(BaseModel):
    """Filters, applied in this order: rating threshold, time range, de-duplication, active-user filter,
    iterative k-core. The result is ordered by (timestamp, source row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rating: float | None = Field(default=None, description="keep ratings >= this (implicit positives)")
    start: int | None = Field(default=None, description="keep events at or after (Unix s or YYYY-MM-DD)")
    end: int | None = Field(default=None, description="keep events before (Unix s or YYYY-MM-DD)")
    dedup: Literal["first", "last", "none"] = "first"
    min_user_events: int = Field(default=1, ge=1, description="active-user filter: at least this many")
    max_user_events: int | None = Field(default=None, ge=1, description="drop users above this (bots)")
    k_core: int = Field(default=0, ge=0, description="iterative k-core on users and items (0: off)")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date(cls, v: object) -> object:
        if isinstance(v, str) and not v.lstrip("-").isdigit():
            d = date.fromisoformat(v)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
        if isinstance(v, date):
            return int(datetime(v.year, v.month, v.day, tzinfo=UTC).timestamp())
        return v


def read_reviews_json(path: Path) -> pd.DataFrame:
    """The 2014 5-core reviews file, JSON lines: ``reviewerID``, ``asin``, ``overall``, ``unixReviewTime``."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                users.append(str(rec["reviewerID"]))
                items.append(str(rec["asin"]))
                ratings.append(float(rec.get("overall", np.nan)))
                times.append(int(rec["unixReviewTime"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(
                    f"{path}:{lineno}: malformed review record ({type(exc).__name__}: {exc})"
                ) from None
    return _frame(users, items, ratings, times)


def read_ratings_csv(path: Path) -> pd.DataFrame:
    """The 2014 ratings-only CSV: no header, ``user,item,rating,timestamp``."""
    try:
        df = pd.read_csv(
            path,
            header=None,
            names=["user_raw", "item_raw", "rating", "timestamp"],
            dtype={"user_raw": str, "item_raw": str, "rating": np.float64, "timestamp": np.int64},
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a user,item,rating,timestamp CSV ({exc})") from None
    if df[["user_raw", "item_raw", "timestamp"]].isna().any().any():
        raise DataError(f"{path}: empty user, item or timestamp fields")
    df["src"] = np.arange(len(df), dtype=np.int64)
    return df[RAW_COLUMNS]


def _frame(users: list[str], items: list[str], ratings: list[float], times: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_raw": pd.Series(users, dtype=object),
            "item_raw": pd.Series(items, dtype=object),
            "rating": np.asarray(ratings, dtype=np.float64),
            "timestamp": np.asarray(times, dtype=np.int64),
            "src": np.arange(len(users), dtype=np.int64),
        }
    )


def k_core(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` events until none are left to drop."""
    if k <= 1:
        return df
    while True:
        u = df["user_raw"].map(df["user_raw"].value_counts())
        i = df["item_raw"].map(df["item_raw"].value_counts())
        keep = (u >= k) & (i >= k)
        if bool(keep.all()):
            return df
        df = df[keep]


def apply_filters(df: pd.DataFrame, cfg: EtlConfig) -> pd.DataFrame:
    """Apply ``cfg`` to a raw frame; the result is sorted by (timestamp, src) with a fresh index."""
    if cfg.min_rating is not None:
        df = df[df["rating"] >= cfg.min_rating]
    if cfg.start is not None:
        df = df[df["timestamp"] >= cfg.start]
    if cfg.end is not None:
        df = df[df["timestamp"] < cfg.end]
    df = df.sort_values(["timestamp", "src"], kind="stable")
    if cfg.dedup != "none":
        df = df.drop_duplicates(["user_raw", "item_raw"], keep=cfg.dedup)
    counts = df["user_raw"].map(df["user_raw"].value_counts())
    active = counts >= cfg.min_user_events
    if cfg.max_user_events is not None:
        active &= counts <= cfg.max_user_events
    df = k_core(df[active], cfg.k_core)
    return df.reset_index(drop=True)
