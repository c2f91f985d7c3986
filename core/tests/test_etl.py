"""ETL of the raw Amazon formats and the download code, on small files the tests write."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from replayrec.config import Settings
from replayrec.data import (
    EtlConfig,
    apply_filters,
    download_dataset,
    download_file,
    ensure_prepared,
    get_spec,
    load_dataset,
    read_ratings_csv,
    read_reviews_json,
)
from replayrec.errors import DataError


def _reviews(path: Path, rows: list[tuple[str, str, float, int]]) -> None:
    with gzip.open(path, "wt") as fh:
        for u, i, r, t in rows:
            fh.write(
                json.dumps({"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t, "reviewText": "x"})
                + "\n"
            )


ROWS = [  # user, item, rating, time
    ("A", "i1", 5.0, 100),
    ("A", "i2", 4.0, 100),
    ("A", "i3", 2.0, 300),
    ("A", "i1", 5.0, 400),
    ("B", "i1", 4.0, 50),
    ("B", "i2", 5.0, 60),
    ("B", "i4", 5.0, 70),
    ("C", "i2", 4.0, 500),
    ("C", "i1", 4.0, 90),
    ("D", "i4", 5.0, 10),
]


def test_reviews_reader_and_filters(tmp_path: Path) -> None:
    p = tmp_path / "reviews_Books_5.json.gz"
    _reviews(p, ROWS)
    raw = read_reviews_json(p)
    assert list(raw.columns) == ["user_raw", "item_raw", "rating", "timestamp", "src"]
    assert len(raw) == len(ROWS)

    out = apply_filters(raw, EtlConfig(min_rating=4.0))
    assert (out["rating"] >= 4).all()
    assert out[["user_raw", "item_raw"]].duplicated().sum() == 0, "de-duplicated, first kept"
    assert out["timestamp"].is_monotonic_increasing
    # equal timestamps keep the source order
    same = out[out["timestamp"] == 100]
    assert same["item_raw"].tolist() == ["i1", "i2"]

    timed = apply_filters(raw, EtlConfig(start=60, end=400))
    assert timed["timestamp"].between(60, 399).all()

    active = apply_filters(raw, EtlConfig(min_user_events=2, max_user_events=3))
    assert set(active["user_raw"]) == {"A", "B", "C"}  # D has one event; A has 3 after de-duplication
    assert set(apply_filters(raw, EtlConfig(max_user_events=2))["user_raw"]) == {"C", "D"}


def test_k_core_is_iterative() -> None:
    rows = [
        (u, i, 5.0, t)
        for t, (u, i) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z")])
    ]
    df = pd.DataFrame(rows, columns=["user_raw", "item_raw", "rating", "timestamp"])
    df["src"] = range(len(df))
    out = apply_filters(df, EtlConfig(k_core=2))
    # z has one event -> dropped; then c has one event -> dropped; x and y keep 2 each
    assert sorted(set(out["user_raw"])) == ["a", "b"]
    assert sorted(set(out["item_raw"])) == ["x", "y"]


def test_ratings_csv_reader(tmp_path: Path) -> None:
    p = tmp_path / "ratings.csv"
    p.write_text("u1,i1,5.0,100\nu2,i1,3.0,50\n")
    df = read_ratings_csv(p)
    assert df["user_raw"].tolist() == ["u1", "u2"]
    bad = tmp_path / "bad.csv"
    bad.write_text("u1,i1,five,100\n")
    with pytest.raises(DataError, match="not a user,item,rating,timestamp CSV"):
        read_ratings_csv(bad)


def test_malformed_review_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "r.json.gz"
    with gzip.open(p, "wt") as fh:
        fh.write('{"reviewerID": "A", "asin": "x", "unixReviewTime": 1}\n{"asin": "y"}\n')
    with pytest.raises(DataError, match=r"r\.json\.gz:2: malformed review record"):
        read_reviews_json(p)


def test_raw_reviews_dataset_prepares_end_to_end(tmp_path: Path) -> None:
    spec = get_spec("amazon-books-2014-reviews")
    folder = spec.directory(tmp_path / "data")
    folder.mkdir(parents=True)
    rows = [
        (f"u{u}", f"b{i}", 5.0 if (u + i) % 4 else 2.0, 1000 + u * 10 + i)
        for u in range(30)
        for i in range(12)
    ]
    _reviews(folder / "reviews_Books_5.json.gz", rows)
    s = Settings(data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    ensure_prepared(spec.name, s)
    ds = load_dataset(spec.name, s)
    assert (ds.events["rating"] >= 4).all()
    assert ds.events["user"].value_counts().min() >= 5
    assert ds.manifest["params"]["k_core"] == 5


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_streams_verifies_and_is_atomic(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_dir
    payload = b"user,item,rating,timestamp\n" * 1000
    (root / "f.csv").write_bytes(payload)
    dest = tmp_path / "dl" / "f.csv"
    download_file(f"{url}/f.csv", dest, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload

    dest.write_bytes(b"previous good copy")
    with pytest.raises(DataError, match=r"has md5 .* expected 0000"):
        download_file(f"{url}/f.csv", dest, md5="0" * 32, progress=False)
    assert dest.read_bytes() == b"previous good copy"
    assert not dest.with_name("f.csv.part").exists()

    with pytest.raises(DataError, match=r"download of .*missing\.csv failed"):
        download_file(f"{url}/missing.csv", tmp_path / "dl" / "m.csv", progress=False)


def test_download_dataset_from_a_mirror(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_dir
    (root / "ratings_Books.csv").write_text("u,i,5.0,1\n")
    spec = get_spec("amazon-books-2014-ratings")
    got = download_dataset(spec, tmp_path / "data", base_url=url)
    assert got[0].read_text() == "u,i,5.0,1\n"
    assert got[0] == spec.directory(tmp_path / "data") / "ratings_Books.csv"
