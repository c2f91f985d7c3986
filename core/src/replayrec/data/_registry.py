"""The dataset registry: what each dataset is, where its files live, how to check them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from replayrec.errors import DataError

__all__ = ["DATASETS", "DataFile", "DatasetSpec", "get_spec", "md5_of", "verify_files"]

Kind = Literal["interactions-csv", "kgat", "amazon-reviews-json", "amazon-ratings-csv", "synthetic"]

_SNAP = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"


@dataclass(frozen=True)
class DataFile:
    """One source file: its name inside the dataset folder, expected md5 (``None``: not published) and
    where the public copy can be downloaded from."""

    name: str
    md5: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: Kind
    description: str
    files: tuple[DataFile, ...] = ()
    protocol: Literal["loo", "given", "temporal"] = "loo"
    folder: str | None = None
    etl: dict[str, object] = field(default_factory=dict)

    def directory(self, data_dir: Path) -> Path:
        return data_dir / (self.folder or self.name)


def _csv(name: str, description: str, inter_md5: str, items_md5: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        "interactions-csv",
        description,
        (DataFile("interactions.csv.gz", inter_md5), DataFile("items.csv.gz", items_md5)),
    )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _csv(
            "amazon-books-2014-1m",
            "Amazon Books 2014, 1M-user sample, 5-core, day timestamps, titles (main dataset)",
            "b18468abda2fb312089dd0f5339bb661",
            "e203b0f91967a9aca4b1c11720260592",
        ),
        DatasetSpec(
            "amazon-book-kgat",
            "kgat",
            "KGAT amazon-book: given 80/20 train/test split, no timestamps",
            (
                DataFile("train.txt.gz", "881d89119d40adac19d8cc61560b67cc"),
                DataFile("test.txt.gz", "9c4ad6bc30f23582ef6764f0f643d26d"),
                DataFile("user_list.txt.gz", "ab2495081ac3f861eb8fcf02b089b992"),
                DataFile("item_list.txt.gz", "5e24ebb36809a1a14ed0c7ebe45bd571"),
            ),
            protocol="given",
        ),
        _csv(
            "amazon-electronics-2014-1m",
            "Amazon Electronics 2014, 1M-user sample, 5-core",
            "30a9f02eaa56509737c7338866e818aa",
            "7c2133446330ae3f68214f8fa593e3b6",
        ),
        _csv(
            "amazon-beauty-2014",
            "Amazon Beauty 2014, 5-core",
            "5f3e429c60108143f6f20f8b760f66e5",
            "031ce3de0c4bcb2fbbc5573f86a90717",
        ),
        _csv(
            "amazon-toys-2014",
            "Amazon Toys & Games 2014, 5-core",
            "3f108e3e3a82bb4efe1de013edb74c6d",
            "2fef6eaa007658da45b27d79c2f56fbb",
        ),
        # The raw public McAuley files, prepared by replayrec's own ETL (download with `data download`).
        DatasetSpec(
            "amazon-books-2014-reviews",
            "amazon-reviews-json",
            "Amazon Books 2014 5-core reviews (raw JSON lines) through replayrec's ETL",
            (DataFile("reviews_Books_5.json.gz", None, f"{_SNAP}/reviews_Books_5.json.gz"),),
            etl={"min_rating": 4.0, "k_core": 5},
        ),
        DatasetSpec(
            "amazon-books-2014-ratings",
            "amazon-ratings-csv",
            "Amazon Books 2014 ratings-only CSV (user,item,rating,timestamp) through replayrec's ETL",
            (DataFile("ratings_Books.csv", None, f"{_SNAP}/ratings_Books.csv"),),
            etl={"min_rating": 4.0, "k_core": 10},
        ),
        DatasetSpec(
            "synthetic",
            "synthetic",
            "Synthetic behaviour world (tastes, drifting session intents, power-law popularity, new items)",
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_files(spec: DatasetSpec, data_dir: Path) -> dict[str, str]:
    """Check every source file exists and matches its md5; return ``{file: md5}``."""
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist (set REPLAYREC_DATA_DIR or --data-dir)")
    folder = spec.directory(data_dir)
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} is missing for dataset {spec.name!r}")
    sums: dict[str, str] = {}
    for f in spec.files:
        path = folder / f.name
        if not path.is_file():
            raise DataError(f"missing data file {path} for dataset {spec.name!r}")
        got = md5_of(path)
        if f.md5 is not None and got != f.md5:
            raise DataError(f"md5 mismatch for {path}: expected {f.md5}, got {got} (corrupt or wrong file)")
        sums[f.name] = got
    return sums
