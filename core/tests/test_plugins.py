"""Entry-point discovery: broken plugins are skipped when listing and fail loudly when selected."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from replayrec.errors import ConfigError, PluginError
from replayrec.plugins import (
    available,
    build_stage,
    check_stage_class,
    list_plugins,
    load_stage_class,
    parse_config,
)
from replayrec.stages import Recall
from replayrec.testing import tiny_world


def _fake_dist(
    root: Path, dist: str, entry_points: str, module: str | None = None, code: str = "", requires: str = ""
) -> None:
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n"
    if requires:
        meta += f"Requires-Dist: {requires}\n"
    (info / "METADATA").write_text(meta)
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(code))


GOOD = """
from typing import ClassVar
from replayrec.stages import Recall, StageConfig, topk_candidates
import numpy as np

class Cfg(StageConfig):
    depth: int = 3

class {cls}(Recall):
    name: ClassVar[str] = "{name}"
    Config = Cfg
    core_api: ClassVar[str] = "{api}"
    def retrieve(self, request, k):
        self.check_k(k)
        return topk_candidates(np.zeros(self.n_items), k, request.exclude, self.name)
"""


@pytest.fixture
def fake_site(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for mod in [m for m in sys.modules if m.startswith("fakeplug")]:
            del sys.modules[mod]


def test_installed_plugins_are_discovered() -> None:
    names = {(p.kind, p.name) for p in list_plugins() if p.ok}
    assert {("recall", "popularity"), ("recall", "itemcf"), ("rank", "passthrough")} <= names


def test_broken_plugins_are_listed_with_a_warning_and_fail_on_selection(fake_site: Path, caplog) -> None:
    _fake_dist(fake_site, "fake-missing", "[replayrec.recall]\nghost = fakeplug_none.nowhere:Ghost\n")
    _fake_dist(
        fake_site,
        "fake-oldapi",
        "[replayrec.recall]\nold = fakeplug_old:Old\n",
        "fakeplug_old",
        GOOD.format(cls="Old", name="old", api="0.3"),
    )
    _fake_dist(
        fake_site,
        "fake-good",
        "[replayrec.recall]\nfine = fakeplug_good:Fine\n",
        "fakeplug_good",
        GOOD.format(cls="Fine", name="fine", api="1.0"),
    )
    _fake_dist(
        fake_site,
        "fake-newcore",
        "[replayrec.recall]\nfuture = fakeplug_fut:Fut\n",
        "fakeplug_fut",
        GOOD.format(cls="Fut", name="future", api="1.0"),
        requires="replayrec-core>=9.0",
    )
    with caplog.at_level(logging.WARNING):
        infos = {p.name: p for p in list_plugins(["recall"])}
    assert infos["fine"].ok
    assert not infos["ghost"].ok
    assert "cannot import" in (infos["ghost"].error or "")
    assert not infos["old"].ok
    assert "core_api '0.3'" in (infos["old"].error or "")
    assert not infos["future"].ok
    assert "requires replayrec-core>=9.0" in (infos["future"].error or "")
    assert "skipping broken recall plugin 'ghost'" in caplog.text
    assert "fine" in available("recall")

    with pytest.raises(PluginError, match=r"recall plugin 'ghost' is broken: .*available: .*fine.*itemcf"):
        load_stage_class("recall", "ghost")
    with pytest.raises(
        PluginError, match=r"unknown recall plugin 'nope'; available: .*fine, itemcf, .*popularity"
    ):
        load_stage_class("recall", "nope")

    world = tiny_world()
    stage = build_stage("recall", "fine", {"depth": 4}, world.context())
    assert isinstance(stage, Recall)
    with pytest.raises(ConfigError, match=r"invalid config for recall plugin 'fine': colour: unknown key"):
        build_stage("recall", "fine", {"colour": "red"}, world.context())
    with pytest.raises(ConfigError, match=r"depth: Input should be a valid integer"):
        parse_config(type(stage), {"depth": "deep"})


def test_check_stage_class_rejects_incomplete_classes() -> None:
    class NoName(Recall):
        def retrieve(self, request, k):  # type: ignore[no-untyped-def]
            return []

    with pytest.raises(PluginError, match="does not declare a name"):
        check_stage_class("recall", NoName)

    class Abstract(Recall):
        name = "abstract"

    with pytest.raises(PluginError, match="does not implement retrieve"):
        check_stage_class("recall", Abstract)
    with pytest.raises(PluginError, match=r"is not a subclass of replayrec\.stages\.Rank"):
        check_stage_class("rank", NoName)
