"""Artifact weights: safetensors written and read with numpy, bad files refused with a clear error, and the
conversion of older ``model.pt`` artifacts (tensors only: pickled code is never run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from replayrec.artifacts import ARTIFACT_META, load_weights, save_weights
from replayrec.errors import ConfigError
from replayrec.training import convert_legacy_weights


def _artifact(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / ARTIFACT_META).write_text(json.dumps({"plugin": "lightgcn", "dataset": "tiny"}))
    return path


def test_round_trip_keeps_names_shapes_and_dtypes(tmp_path: Path) -> None:
    state = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    file = save_weights(tmp_path / "art", state)
    assert file.name == "model.safetensors"
    back = load_weights(tmp_path / "art", "lightgcn")
    assert set(back) == {"a", "b"}
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["a"].dtype == np.float32
    assert back["b"].dtype == np.int64
    assert back["b"].tolist() == [1, 2]


def test_bad_weight_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lightgcn: no model file"):
        load_weights(tmp_path / "nothing", "lightgcn")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ConfigError, match="cannot load"):
        load_weights(tmp_path / "corrupt", "lightgcn")
    (tmp_path / "old").mkdir()
    torch.save({"a": torch.zeros(2)}, tmp_path / "old" / "model.pt")
    with pytest.raises(ConfigError, match="older torch state dict"):
        load_weights(tmp_path / "old", "lightgcn")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_legacy_artifacts_convert_without_running_pickled_code(tmp_path: Path) -> None:
    art = _artifact(tmp_path / "legacy")
    torch.save({"item_embedding": torch.ones(3, 2)}, art / "model.pt")
    out = convert_legacy_weights(art)
    assert out == art / "model.safetensors"
    np.testing.assert_array_equal(load_weights(art, "lightgcn")["item_embedding"], np.ones((3, 2)))
    assert convert_legacy_weights(art) == out, "converting twice is a no-op"

    evil = _artifact(tmp_path / "evil")
    marker = tmp_path / "pwned"
    torch.save({"x": _Evil(marker)}, evil / "model.pt")
    with pytest.raises(ConfigError, match="cannot load"):
        convert_legacy_weights(evil)
    assert not marker.exists(), "the pickled callable never ran"
    assert not (evil / "model.safetensors").exists()
    with pytest.raises(ConfigError, match="neither"):
        convert_legacy_weights(_artifact(tmp_path / "empty"))


def test_latest_and_resolution_keep_to_the_protocol_trained_on(tmp_path: Path) -> None:
    """``@latest`` under a protocol is the newest model trained on its training events; a model trained on
    another protocol's is refused with the command that trains the right one (a leave-one-out model has
    seen the temporal test period)."""
    from replayrec.artifacts import artifacts_dir, check_protocol, latest_artifact
    from replayrec.config import Settings
    from replayrec.registry import resolve_model

    settings = Settings(state_dir=tmp_path)
    root = artifacts_dir(settings, "lightgcn", "synthetic")
    for stamp, protocol in (("20260101", "temporal"), ("20260102", "loo")):
        (root / stamp).mkdir(parents=True)
        meta = {"plugin": "lightgcn", "dataset": "synthetic", "protocol": protocol}
        (root / stamp / ARTIFACT_META).write_text(json.dumps(meta))
    assert latest_artifact(settings, "lightgcn", "synthetic").name == "20260102"
    assert latest_artifact(settings, "lightgcn", "synthetic", "temporal").name == "20260101"
    assert resolve_model("lightgcn@latest", settings, "synthetic", protocol="temporal").name == "20260101"
    with pytest.raises(ConfigError, match=r"no trained 'lightgcn' model for synthetic on the given"):
        latest_artifact(settings, "lightgcn", "synthetic", "given")
    with pytest.raises(ConfigError, match=r"trained on the 'loo' protocol.*--protocol temporal"):
        resolve_model(root / "20260102", settings, "synthetic", "lightgcn", protocol="temporal")
    check_protocol(root / "20260102", "loo")
    (root / "20260103").mkdir()  # an artifact from before protocols were recorded counts for any
    (root / "20260103" / ARTIFACT_META).write_text(json.dumps({"plugin": "lightgcn", "dataset": "synthetic"}))
    assert latest_artifact(settings, "lightgcn", "synthetic", "temporal").name == "20260103"
