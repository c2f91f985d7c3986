"""Loading prepared datasets and choosing the default one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq

from replayrec.config import Settings
from replayrec.data._interactions import Catalog, Interactions
from replayrec.data._prepare import FORMAT_VERSION, prepare
from replayrec.data._registry import DATASETS, get_spec, md5_of
from replayrec.data._synthetic import WorldConfig
from replayrec.errors import DataError, UnknownUserError

__all__ = ["Dataset", "default_dataset", "ensure_prepared", "load_dataset", "prepared_path"]

MAIN_DATASET = "amazon-books-2014-1m"


@dataclass(eq=False)
class Dataset:
    name: str
    path: Path
    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (16 hex) of what determines the prepared data: the source files' checksums, the ETL
        format and parameters, the groups and the counts (not the preparation time)."""
        keep = {k: v for k, v in self.manifest.items() if not k.endswith("_seconds")}
        blob = json.dumps(keep, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @cached_property
    def catalog(self) -> Catalog:
        titles = [t if isinstance(t, str) and t else None for t in self.items["title"].tolist()]
        return Catalog(
            self.items["raw_id"].to_numpy(), titles, self.items["group"].to_numpy(np.int64), self.name
        )

    def as_of(self, until: int | None, window_s: float | None = None) -> Dataset:
        """The dataset as it stood at ``until`` (Unix seconds; None: its newest event): the same catalogue
        and users, only the events before it — what a retraining at that moment can see — and with
        ``window_s`` only those of its last ``window_s`` seconds (a retraining after a shift, weighting the
        new behaviour). The manifest records both."""
        ts = self.events["timestamp"].to_numpy()
        end = int(ts.max(initial=0)) + 1 if until is None else int(until)
        keep = ts < end
        if window_s is not None:
            if not window_s > 0:
                raise DataError(f"a training window must be positive, got {window_s} s")
            keep &= ts >= end - window_s
        if not keep.any():
            raise DataError(f"dataset {self.name} has no event in [{end - (window_s or 0):.0f}, {end})")
        events = self.events[keep].reset_index(drop=True)
        manifest = {**self.manifest, "as_of": end, **({"window_s": window_s} if window_s else {})}
        return Dataset(self.name, self.path, events, self.items, self.users, manifest)

    def interactions(self, mask: npt.NDArray[np.bool_] | None = None) -> Interactions:
        ev = self.events if mask is None else self.events[mask]
        return Interactions(
            ev["user"].to_numpy(),
            ev["item"].to_numpy(),
            ev["timestamp"].to_numpy(),
            self.n_users,
            self.n_items,
        )

    @cached_property
    def _user_index(self) -> dict[str, int]:
        return {str(r): int(u) for u, r in zip(self.users["user"], self.users["raw_id"], strict=True)}

    def user_id(self, raw: str | int) -> int:
        """Dense id of a raw user id; :class:`UnknownUserError` naming the user otherwise."""
        uid = self._user_index.get(str(raw))
        if uid is None:
            raise UnknownUserError(f"user {raw!r} not found in dataset {self.name}")
        return uid

    def truth(self, key: str) -> npt.NDArray[Any]:
        p = self.path / "truth" / f"{key}.npy"
        if not p.is_file():
            raise DataError(f"dataset {self.name} has no ground truth {key!r}")
        arr: npt.NDArray[Any] = np.load(p, allow_pickle=False)
        return arr


def prepared_path(name: str, settings: Settings) -> Path:
    return settings.datasets_dir / name


def _is_current(path: Path, name: str, data_dir: Path, world: WorldConfig | None) -> bool:
    mf = path / "manifest.json"
    if not mf.is_file():
        return False
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("format") != FORMAT_VERSION:
        return False
    spec = get_spec(name)
    if spec.kind == "synthetic":
        # without an explicit world, any earlier synthetic preparation is the one to use
        return world is None or bool(manifest.get("params") == world.model_dump())
    # cheap freshness check: source files still there with the recorded md5
    folder = spec.directory(data_dir)
    for f in spec.files:
        p = folder / f.name
        if not p.is_file() or manifest.get("sources", {}).get(f.name) != md5_of(p):
            return False
    return True


def ensure_prepared(
    name: str, settings: Settings, *, force: bool = False, world: WorldConfig | None = None
) -> tuple[Path, bool]:
    """Prepare ``name`` unless an up-to-date preparation exists. Returns (path, prepared_now)."""
    spec = get_spec(name)
    path = prepared_path(name, settings)
    if not force and _is_current(path, name, settings.data_dir, world):
        return path, False
    prepare(spec, settings.data_dir, path, world=world, seed=settings.seed % (2**31))
    return path, True


def _read(path: Path) -> pd.DataFrame:
    # pyarrow.parquet directly: pandas.read_parquet goes through pyarrow.dataset, whose thread pool
    # (pyarrow 25) intermittently aborts the interpreter at exit ("terminate called without an active
    # exception"): seen in 4 of 20 runs, none of 30 this way
    frame: pd.DataFrame = pq.read_table(path).to_pandas()
    return frame


def load_dataset(name: str, settings: Settings) -> Dataset:
    get_spec(name)
    path = prepared_path(name, settings)
    if not (path / "manifest.json").is_file():
        raise DataError(f"dataset {name!r} is not prepared; run: replayrec data prepare --dataset {name}")
    manifest = json.loads((path / "manifest.json").read_text())
    events = _read(path / "events.parquet")
    items = _read(path / "items.parquet")
    users = _read(path / "users.parquet")
    return Dataset(name, path, events, items, users, manifest)


def default_dataset(settings: Settings) -> tuple[str, str]:
    """The dataset to use when none is named, with the reason: the real Amazon Books data when its files are
    present, else the synthetic world."""
    spec = DATASETS[MAIN_DATASET]
    folder = spec.directory(settings.data_dir)
    if all((folder / f.name).is_file() for f in spec.files):
        return MAIN_DATASET, f"using the real Amazon Books data found in {folder}"
    return "synthetic", f"no Amazon Books data in {folder}; using the synthetic world"
