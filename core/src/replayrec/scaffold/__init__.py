"""``replayrec plugins new``: render the plugin template into a new package folder."""

from __future__ import annotations

import re
from pathlib import Path

from replayrec import __version__
from replayrec.errors import ConfigError

__all__ = ["core_range", "new_plugin"]

_TEMPLATE = Path(__file__).with_name("template")
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def core_range(version: str = __version__) -> str:
    """The ``replayrec-core`` range a new plugin declares: this core's minor series (``>=0.5,<0.6``)."""
    m = re.match(r"^(\d+)\.(\d+)", version)
    if m is None:  # running from an uninstalled source tree
        return ">=0"
    major, minor = int(m[1]), int(m[2])
    return f">={major}.{minor},<{major}.{minor + 1}"


def new_plugin(name: str, kind: str, dest: Path) -> Path:
    """Create ``dest/<kind>_<name>/`` from the template; refuses to overwrite anything."""
    if not _NAME.match(name):
        raise ConfigError(f"plugin name {name!r} must match {_NAME.pattern}")
    if kind != "recall":
        raise ConfigError(f"the template scaffolds recall plugins; got kind {kind!r}")
    folder = dest / f"{kind}_{name}"
    if folder.exists():
        raise ConfigError(f"{folder} already exists; not overwriting it")
    values = {
        "__module__": f"replayrec_{kind}_{name}",
        "__dist__": f"{kind}-{name}".replace("_", "-"),
        "__Class__": "".join(p.capitalize() for p in name.split("_")) + kind.capitalize(),
        "__kind__": kind,
        "__core_range__": core_range(),
        "__name__": name,
    }
    for src in sorted(_TEMPLATE.rglob("*")):
        if src.is_dir() or "__pycache__" in src.parts:
            continue
        rel = str(src.relative_to(_TEMPLATE))
        text = src.read_text()
        for key, val in values.items():
            rel = rel.replace(key, val)
            text = text.replace(key, val)
        out = folder / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return folder
