"""Fixtures shared by every test folder: settings in a temporary state dir, the real data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from replayrec.config import Settings
from replayrec.data import DATASETS, ensure_prepared


def _data_dir() -> Path:
    return Settings().data_dir


def has_dataset(name: str) -> bool:
    spec = DATASETS[name]
    folder = spec.directory(_data_dir())
    return all((folder / f.name).is_file() for f in spec.files)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh state directory (real data directory kept)."""
    return Settings(data_dir=_data_dir(), state_dir=tmp_path / "state")


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One prepared state directory for the real datasets, shared by the whole session."""
    return Settings(data_dir=_data_dir(), state_dir=tmp_path_factory.mktemp("real-state"))


def _prepared(name: str, settings: Settings):  # type: ignore[no-untyped-def]
    if not has_dataset(name):
        pytest.skip(f"{name} not present in the data directory")
    from replayrec.data import load_dataset

    ensure_prepared(name, settings)
    return load_dataset(name, settings)


@pytest.fixture(scope="session")
def books(real_settings: Settings):  # type: ignore[no-untyped-def]
    return _prepared("amazon-books-2014-1m", real_settings)


@pytest.fixture(scope="session")
def kgat(real_settings: Settings):  # type: ignore[no-untyped-def]
    return _prepared("amazon-book-kgat", real_settings)
