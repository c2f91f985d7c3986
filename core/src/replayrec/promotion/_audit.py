"""Append-only audit log of promotion decisions (JSON lines, one fsync'd write per record)."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replayrec.errors import DataError

__all__ = ["AuditLog"]


class AuditLog:
    """``<state_dir>/audit/promotion.jsonl``: records are only appended (``O_APPEND``), never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = "unknown"
        full = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "actor": actor, **record}
        line = (json.dumps(full, sort_keys=True, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)  # one write of a whole line: concurrent writers never interleave records
            os.fsync(fd)
        finally:
            os.close(fd)
        return full

    def read(self, plugin: str | None = None) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{self.path}:{n} is not a JSON record") from None
            if plugin is None or rec.get("plugin") == plugin:
                out.append(rec)
        return out
