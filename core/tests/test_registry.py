"""Model references (`<plugin>@<alias>`, artifact paths), stage specs with models, paired lift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from replayrec.artifacts import artifacts_dir, latest_artifact
from replayrec.cascade import ChannelSpec
from replayrec.config import Settings
from replayrec.errors import ConfigError, PluginError
from replayrec.evaluation import paired_lift
from replayrec.plugins import kind_of
from replayrec.registry import StageResolver, is_model_ref, resolve_model
from replayrec.testing import tiny_world


def _artifact(settings: Settings, plugin: str, dataset: str, stamp: str, **stage: object) -> Path:
    path = artifacts_dir(settings, plugin, dataset) / f"{stamp}-abcdef12"
    path.mkdir(parents=True)
    meta = {"plugin": plugin, "dataset": dataset, "stage_config": stage}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", data_dir=tmp_path / "data")


def test_latest_is_the_newest_complete_artifact(settings: Settings) -> None:
    _artifact(settings, "popularity", "tiny", "20260101T000000")
    newer = _artifact(settings, "popularity", "tiny", "20260301T000000")
    _artifact(settings, "popularity", "other", "20270101T000000")
    incomplete = artifacts_dir(settings, "popularity", "tiny") / "20261231T000000-running"
    incomplete.mkdir()  # a run still writing (no meta.json) is never "latest"
    assert latest_artifact(settings, "popularity", "tiny") == newer
    assert resolve_model("popularity@latest", settings, "tiny") == newer.resolve()
    assert resolve_model(str(newer), settings, "tiny", "popularity") == newer.resolve()


def test_bad_references_fail_with_the_reason(settings: Settings) -> None:
    art = _artifact(settings, "popularity", "tiny", "20260101T000000")
    with pytest.raises(ConfigError, match="no trained 'itemcf' model for tiny"):
        resolve_model("itemcf@latest", settings, "tiny")
    with pytest.raises(ConfigError, match="trained on 'tiny', not 'other'"):
        resolve_model(str(art), settings, "other")
    with pytest.raises(ConfigError, match="is a 'popularity' model, not 'itemcf'"):
        resolve_model(str(art), settings, "tiny", "itemcf")
    with pytest.raises(ConfigError, match="names plugin 'popularity', expected 'itemcf'"):
        resolve_model("popularity@latest", settings, "tiny", "itemcf")
    with pytest.raises(ConfigError, match="neither an artifact directory"):
        resolve_model("no/such/dir", settings, "tiny")
    with pytest.raises(ConfigError, match="not a replayrec model artifact"):
        resolve_model(str(settings.state_dir), settings, "tiny")
    (art / "meta.json").write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_model(str(art), settings, "tiny")
    assert is_model_ref("din@prod")
    assert not is_model_ref("./din")


def test_stage_specs_take_the_artifact_config_and_override_it(settings: Settings) -> None:
    world = tiny_world()
    _artifact(settings, "popularity", "tiny", "20260101T000000", mode="recent", window_days=3)
    resolver = StageResolver(settings, "tiny", world.context())
    stage, spec = resolver.build("recall", {"type": "popularity", "model": "popularity@latest"})
    assert stage.config.model_dump()["window_days"] == 3, "the artifact's serving config is the base"
    assert spec["model"].endswith("-abcdef12")
    stage, _ = resolver.build(
        "recall", {"type": "popularity", "model": "popularity@latest", "window_days": 9}
    )
    assert stage.config.model_dump()["window_days"] == 9, "the spec's own keys win"
    plain = resolver.context_for(ChannelSpec(type="popularity"))
    assert plain.artifact is None
    with pytest.raises(ConfigError, match="needs a 'type'"):
        resolver.build("recall", {"model": "popularity@latest"})


def test_kind_of_names_the_stage_kind() -> None:
    assert kind_of("itemcf") == "recall"
    assert kind_of("passthrough") == "rank"
    with pytest.raises(PluginError, match="unknown plugin 'nonesuch'; available recall: "):
        kind_of("nonesuch")


def test_paired_lift_interval() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(4000)
    other = base * 1.25 + rng.normal(0, 0.01, 4000)
    point, lo, hi = paired_lift(base, other, n_boot=300, seed=1)
    assert point == pytest.approx(other.mean() / base.mean() - 1)
    assert lo < point < hi
    assert hi - lo < 0.01, "pairing removes the between-user variance"
    with pytest.raises(ValueError, match="same users"):
        paired_lift(base, other[:10])
