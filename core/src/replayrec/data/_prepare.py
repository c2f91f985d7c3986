"""Preparation: source files → the canonical event table (Parquet) plus item and user tables.

Layout under ``<state_dir>/datasets/<name>/``: ``events.parquet`` (user, item, action, rating, timestamp, seq
and, for datasets with a given split, split), ``items.parquet`` (item, raw_id, title, group),
``users.parquet`` (user, raw_id), ``manifest.json``. A preparation is written to a temporary folder and
swapped in only when complete, so a failure (missing file, md5 mismatch, parse error) leaves any earlier
preparation untouched.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from replayrec.data._etl import EtlConfig, apply_filters, read_ratings_csv, read_reviews_json
from replayrec.data._groups import derive_item_groups
from replayrec.data._interactions import Interactions
from replayrec.data._registry import DatasetSpec, verify_files
from replayrec.data._synthetic import WorldConfig, generate_world
from replayrec.errors import DataError

__all__ = ["FORMAT_VERSION", "PreparedTables", "prepare", "training_mask", "write_prepared"]

FORMAT_VERSION = 1
#: fraction of the time-ordered events held out at the end by the temporal protocol
TEMPORAL_HOLDOUT = 0.1

PreparedTables = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]

EVENT_SCHEMA = pa.schema(
    [
        ("user", pa.int32()),
        ("item", pa.int32()),
        ("action", pa.dictionary(pa.int8(), pa.string())),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
        ("seq", pa.int64()),
    ]
)


def _dense(raw: pd.Series, universe: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids ``0..n-1`` in sorted order of the raw ids (numeric order when all are integers)."""
    values = raw if universe is None else pd.concat([universe, raw], ignore_index=True)
    uniq = np.asarray(pd.unique(values))
    try:
        keys = uniq.astype(np.int64)
        uniq = uniq[np.argsort(keys, kind="stable")]
    except (ValueError, TypeError):
        uniq = np.sort(uniq.astype(str))
    index = pd.Index(uniq)
    return index.get_indexer(pd.Index(raw)).astype(np.int64), uniq


def _events_frame(
    user: np.ndarray, item: np.ndarray, ts: np.ndarray, action: str, rating: np.ndarray | None
) -> pd.DataFrame:
    n = user.size
    return pd.DataFrame(
        {
            "user": user.astype(np.int32),
            "item": item.astype(np.int32),
            "action": pd.Categorical([action] * n, categories=[action]),
            "rating": (rating if rating is not None else np.full(n, np.nan)).astype(np.float32),
            "timestamp": ts.astype(np.int64),
            "seq": np.arange(n, dtype=np.int64),
        }
    )


def _from_csv(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    try:
        raw = pd.read_csv(
            folder / "interactions.csv.gz",
            dtype={"user_id": np.int64, "item_id": np.int64, "timestamp": np.int64},
        )
        titles = pd.read_csv(
            folder / "items.csv.gz", dtype={"item_id": np.int64, "title": str}, keep_default_na=False
        )
    except (ValueError, KeyError, pd.errors.ParserError, EOFError, OSError) as exc:
        raise DataError(f"cannot parse {folder}: {exc}") from None
    missing = {"user_id", "item_id", "timestamp"} - set(raw.columns)
    if missing:
        raise DataError(f"{folder / 'interactions.csv.gz'} lacks columns {sorted(missing)}")
    order = np.lexsort((np.arange(len(raw)), raw["timestamp"].to_numpy()))  # time, then file row
    raw = raw.iloc[order]
    u, u_raw = _dense(raw["user_id"])
    i, i_raw = _dense(raw["item_id"], titles["item_id"])
    ev = _events_frame(u, i, raw["timestamp"].to_numpy(), "review", None)
    title_of = dict(zip(titles["item_id"].to_numpy(), titles["title"], strict=True))
    items = pd.DataFrame(
        {
            "item": np.arange(i_raw.size, dtype=np.int32),
            "raw_id": i_raw.astype(str),
            "title": [title_of.get(r) or None for r in i_raw],
        }
    )
    users = pd.DataFrame({"user": np.arange(u_raw.size, dtype=np.int32), "raw_id": u_raw.astype(str)})
    return ev, items, users


def _kgat_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with gzip.open(path, "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids = np.asarray(parts, dtype=np.int64)
            except ValueError:
                raise DataError(f"{path}:{lineno}: non-integer id in {line.strip()[:60]!r}") from None
            users.append(np.full(ids.size - 1, ids[0], dtype=np.int64))
            items.append(ids[1:])
    return np.concatenate(users), np.concatenate(items)


def _from_kgat(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    tr_u, tr_i = _kgat_lines(folder / "train.txt.gz")
    te_u, te_i = _kgat_lines(folder / "test.txt.gz")
    umap = pd.read_csv(folder / "user_list.txt.gz", sep=" ", dtype={"org_id": str, "remap_id": np.int64})
    imap = pd.read_csv(
        folder / "item_list.txt.gz", sep=" ", dtype={"org_id": str, "remap_id": np.int64, "freebase_id": str}
    )
    n_users, n_items = len(umap), len(imap)
    if max(tr_u.max(), te_u.max()) >= n_users or max(tr_i.max(), te_i.max()) >= n_items:
        raise DataError(f"{folder}: ids in train/test exceed the user/item lists")
    user = np.concatenate([tr_u, te_u])
    item = np.concatenate([tr_i, te_i])
    ev = _events_frame(user, item, np.zeros(user.size, dtype=np.int64), "interaction", None)
    ev["split"] = pd.Categorical(
        np.repeat(["train", "test"], [tr_u.size, te_u.size]), categories=["train", "test"]
    )
    items = pd.DataFrame(
        {"item": imap["remap_id"].to_numpy(np.int32), "raw_id": imap["org_id"], "title": None}
    )
    items = items.sort_values("item").reset_index(drop=True)
    users = pd.DataFrame({"user": umap["remap_id"].to_numpy(np.int32), "raw_id": umap["org_id"]})
    return ev, items, users.sort_values("user").reset_index(drop=True)


def _from_raw(
    spec: DatasetSpec, folder: Path, etl: EtlConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    path = folder / spec.files[0].name
    reader: Callable[[Path], pd.DataFrame] = (
        read_reviews_json if spec.kind == "amazon-reviews-json" else read_ratings_csv
    )
    df = apply_filters(reader(path), etl)
    if df.empty:
        raise DataError(f"the ETL filters left no events in {path}")
    u, u_raw = _dense(df["user_raw"])
    i, i_raw = _dense(df["item_raw"])
    ev = _events_frame(u, i, df["timestamp"].to_numpy(), "rating", df["rating"].to_numpy())
    items = pd.DataFrame(
        {"item": np.arange(i_raw.size, dtype=np.int32), "raw_id": i_raw.astype(str), "title": None}
    )
    users = pd.DataFrame({"user": np.arange(u_raw.size, dtype=np.int32), "raw_id": u_raw.astype(str)})
    return ev, items, users


def _from_world(cfg: WorldConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    w = generate_world(cfg)
    e = w.events
    ev = _events_frame(e["user"].to_numpy(), e["item"].to_numpy(), e["timestamp"].to_numpy(), "click", None)
    items = pd.DataFrame(
        {
            "item": np.arange(cfg.n_items, dtype=np.int32),
            "raw_id": np.arange(cfg.n_items).astype(str),
            "title": [f"synthetic item {i} (topic {t})" for i, t in enumerate(w.item_topic)],
        }
    )
    users = pd.DataFrame(
        {"user": np.arange(cfg.n_users, dtype=np.int32), "raw_id": np.arange(cfg.n_users).astype(str)}
    )
    truth = {
        "item_topic": w.item_topic,
        "item_popularity": w.item_popularity,
        "item_release": w.item_release,
        "user_taste": w.user_taste,
        "user_taste_end": w.user_taste_end,
        "event_intent": e["intent"].to_numpy(),
        "event_session": e["session"].to_numpy(),
    }
    return ev, items, users, truth


def training_mask(events: pd.DataFrame) -> np.ndarray:
    """Events that are training data under every protocol: the given ``train`` split when there is one;
    otherwise neither of a user's last two events (``loo``) nor the final temporal hold-out window."""
    if "split" in events.columns:
        return (events["split"] == "train").to_numpy()
    seq = events["seq"].to_numpy()
    user = events["user"].to_numpy()
    order = np.lexsort((seq, user))
    u_sorted = user[order]
    last = np.ones(len(events), dtype=bool)
    last[:-1] = u_sorted[1:] != u_sorted[:-1]
    second = np.zeros(len(events), dtype=bool)
    second[:-1] = last[1:] & (u_sorted[:-1] == u_sorted[1:])
    keep = np.empty(len(events), dtype=bool)
    keep[order] = ~(last | second)
    cutoff = np.quantile(events["timestamp"].to_numpy(), 1 - TEMPORAL_HOLDOUT) if len(events) else 0
    return keep & (events["timestamp"].to_numpy() < cutoff)


def write_prepared(
    dest: Path,
    ev: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    manifest: dict[str, Any],
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write the tables into a temporary sibling of ``dest`` and swap it in atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        pq.write_table(pa.Table.from_pandas(ev, preserve_index=False), tmp / "events.parquet")
        pq.write_table(pa.Table.from_pandas(items, preserve_index=False), tmp / "items.parquet")
        pq.write_table(pa.Table.from_pandas(users, preserve_index=False), tmp / "users.parquet")
        if extra:
            (tmp / "truth").mkdir()
            for k, v in extra.items():
                np.save(tmp / "truth" / f"{k}.npy", v, allow_pickle=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        old = dest.parent / f".old-{dest.name}-{os.getpid()}"
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def prepare(
    spec: DatasetSpec,
    data_dir: Path,
    dest: Path,
    *,
    world: WorldConfig | None = None,
    etl: EtlConfig | None = None,
    n_groups: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Prepare ``spec`` into ``dest``; returns the manifest."""
    started = time.perf_counter()
    truth: dict[str, np.ndarray] | None = None
    sources: dict[str, str] = {}
    params: dict[str, Any] = {}
    if spec.kind == "synthetic":
        world = world or WorldConfig(seed=seed)
        ev, items, users, truth = _from_world(world)
        params = world.model_dump()
    else:
        sources = verify_files(spec, data_dir)
        folder = spec.directory(data_dir)
        if spec.kind == "interactions-csv":
            ev, items, users = _from_csv(folder)
        elif spec.kind == "kgat":
            ev, items, users = _from_kgat(folder)
        else:
            etl = etl or EtlConfig.model_validate(spec.etl)
            ev, items, users = _from_raw(spec, folder, etl)
            params = etl.model_dump()
    train = ev[training_mask(ev)]
    inter = Interactions(
        train["user"].to_numpy(),
        train["item"].to_numpy(),
        train["timestamp"].to_numpy(),
        len(users),
        len(items),
    )
    items["group"] = derive_item_groups(inter, n_groups=n_groups, seed=seed).astype(np.int32)
    manifest = {
        "format": FORMAT_VERSION,
        "dataset": spec.name,
        "kind": spec.kind,
        "protocol": spec.protocol,
        "sources": sources,
        "params": params,
        "has_time": bool(ev["timestamp"].nunique() > 1),
        "counts": {"events": len(ev), "users": len(users), "items": len(items)},
        "groups": {"method": "svd32+kmeans on training-only events", "n_groups": n_groups, "seed": seed},
        "prepare_seconds": round(time.perf_counter() - started, 2),
    }
    write_prepared(dest, ev, items, users, manifest, truth)
    return manifest
