"""Dataset registry, md5 verification, atomic preparation, the real data's measured counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replayrec.config import Settings
from replayrec.data import DATASETS, default_dataset, ensure_prepared, load_dataset, training_mask
from replayrec.errors import DataError, UnknownUserError

BOOKS = "amazon-books-2014-1m"


def _fake_books(root: Path) -> Path:
    """A tiny dataset folder in the Amazon Books CSV format (md5s will not match the registry)."""
    folder = root / BOOKS
    folder.mkdir(parents=True)
    rows = [
        (u, i, 1_400_000_000 + 86_400 * ((u + i) % 7))
        for u in range(100, 130)
        for i in range(100, 112)
        if (u * i) % 3
    ]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(
        folder / "interactions.csv.gz", index=False
    )
    pd.DataFrame({"item_id": range(100, 112), "title": [f'Book, "{i}"' for i in range(12)]}).to_csv(
        folder / "items.csv.gz", index=False
    )
    return folder


def test_missing_data_directory_is_named(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "nowhere", state_dir=tmp_path / "state")
    with pytest.raises(DataError, match=r"data directory .*nowhere does not exist"):
        ensure_prepared(BOOKS, s)


def test_md5_mismatch_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    _fake_books(tmp_path / "data")
    s = Settings(data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    with pytest.raises(DataError, match=r"md5 mismatch for .*interactions\.csv\.gz: expected b18468ab"):
        ensure_prepared(BOOKS, s)
    assert not (tmp_path / "state" / "datasets" / BOOKS).exists()


def test_unknown_dataset_lists_the_known_ones() -> None:
    from replayrec.data import get_spec

    with pytest.raises(DataError, match="known: amazon-books-2014-1m"):
        get_spec("movielens")


@pytest.mark.realdata
def test_failed_prepare_keeps_the_earlier_preparation(tmp_path: Path, books) -> None:
    """Prepare from a copy of the real files, corrupt the copy, prepare again: error, old tables intact."""
    src = DATASETS[BOOKS].directory(Settings().data_dir)
    data = tmp_path / "data"
    shutil.copytree(src, data / BOOKS)
    s = Settings(data_dir=data, state_dir=tmp_path / "state")
    path, fresh = ensure_prepared(BOOKS, s)
    assert fresh
    before = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    target = data / BOOKS / "interactions.csv.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(DataError, match="md5 mismatch"):
        ensure_prepared(BOOKS, s, force=True)
    after = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    assert before == after
    assert len(load_dataset(BOOKS, s).events) == 517_167


@pytest.mark.realdata
def test_books_canonical_table_matches_the_measured_counts(books) -> None:
    ev = books.events
    assert (len(ev), books.n_users, books.n_items) == (517_167, 38_234, 38_519)
    assert list(ev.columns) == ["user", "item", "action", "rating", "timestamp", "seq"]
    assert np.all(np.diff(ev["timestamp"].to_numpy()) >= 0), "time ordered"
    assert np.array_equal(ev["seq"].to_numpy(), np.arange(len(ev)))
    assert ev[["user", "item"]].duplicated().sum() == 0
    assert books.items["title"].notna().all()
    # item groups come from training events only; every group id is valid
    assert books.items["group"].max() < 64
    assert books.manifest["sources"]["interactions.csv.gz"] == "b18468abda2fb312089dd0f5339bb661"


@pytest.mark.realdata
def test_books_tie_break_is_the_file_row_order(books) -> None:
    raw = pd.read_csv(DATASETS[BOOKS].directory(Settings().data_dir) / "interactions.csv.gz")
    first_user = raw[raw["user_id"] == 100]
    uid = books.user_id(100)
    items, _ = books.interactions().sequences.of(uid)
    raw_items = books.catalog.raw_ids[items].astype(int).tolist()
    assert raw_items == first_user["item_id"].tolist()


@pytest.mark.realdata
def test_kgat_given_split(kgat) -> None:
    counts = kgat.events["split"].value_counts()
    assert (counts["train"], counts["test"]) == (652_514, 193_920)
    assert (kgat.n_users, kgat.n_items) == (70_679, 24_915)
    assert training_mask(kgat.events).sum() == 652_514


def test_unknown_user_is_named(settings: Settings) -> None:
    from replayrec.data import WorldConfig

    ensure_prepared("synthetic", settings, world=WorldConfig(n_users=50, n_items=60, n_events=800))
    ds = load_dataset("synthetic", settings)
    topic = ds.truth("item_topic")
    assert topic.shape == (ds.n_items,)
    assert np.array_equal(topic[ds.events["item"].to_numpy()], ds.truth("event_intent"))
    with pytest.raises(UnknownUserError, match="user 'nobody' not found in dataset synthetic"):
        ds.user_id("nobody")


def test_default_dataset_falls_back_to_synthetic(tmp_path: Path) -> None:
    name, why = default_dataset(Settings(data_dir=tmp_path, state_dir=tmp_path / "s"))
    assert name == "synthetic"
    assert "synthetic" in why


@pytest.mark.realdata
def test_default_dataset_is_the_real_books_data_when_present(books) -> None:
    name, why = default_dataset(Settings())
    assert name == BOOKS
    assert "real Amazon Books" in why


def test_preparation_is_reused_until_inputs_change(settings: Settings) -> None:
    from replayrec.data import WorldConfig

    w = WorldConfig(n_users=50, n_items=60, n_events=800)
    _, fresh = ensure_prepared("synthetic", settings, world=w)
    assert fresh
    _, fresh = ensure_prepared("synthetic", settings, world=w)
    assert not fresh
    _, fresh = ensure_prepared("synthetic", settings, world=WorldConfig(n_users=50, n_items=60, n_events=900))
    assert fresh
