"""Download of the public source files (streamed, md5-checked, atomic)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from replayrec.data._registry import DatasetSpec, md5_of
from replayrec.errors import DataError

__all__ = ["download_dataset", "download_file"]


def download_file(
    url: str, dest: Path, md5: str | None = None, timeout: float = 60.0, progress: bool = True
) -> Path:
    """Fetch ``url`` into ``dest``. Writes to ``dest.part`` and renames only after the md5 matches, so a
    failed or corrupt download never replaces an existing file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}") from None
    if md5 is not None:
        got = md5_of(part)
        if got != md5:
            part.unlink(missing_ok=True)
            raise DataError(f"download of {url} has md5 {got}, expected {md5}; kept nothing")
    os.replace(part, dest)
    return dest


def download_dataset(
    spec: DatasetSpec, data_dir: Path, base_url: str | None = None, force: bool = False
) -> list[Path]:
    """Download every file of ``spec`` that has a public URL into ``data_dir/<dataset>/``.

    ``base_url`` replaces the directory part of each URL (mirrors, tests)."""
    folder = spec.directory(data_dir)
    got: list[Path] = []
    for f in spec.files:
        if f.url is None:
            raise DataError(f"dataset {spec.name!r} file {f.name} has no public download URL")
        dest = folder / f.name
        if dest.is_file() and not force:
            got.append(dest)
            continue
        url = f"{base_url.rstrip('/')}/{f.name}" if base_url else f.url
        got.append(download_file(url, dest, f.md5))
    return got
