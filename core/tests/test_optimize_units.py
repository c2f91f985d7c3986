"""The optimisation tools without a trained model: the weight grid, the half-precision copy, ONNX Runtime's
graph optimisation and INT8 quantisation on a small real graph, the gate's config, the recommendation rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from replayrec.application import cheapest_within, optimize_artifact
from replayrec.artifacts import OnnxGraph, has_graph
from replayrec.errors import ConfigError
from replayrec.promotion import GateConfig, load_gates
from replayrec.training import half_precision, optimize_graph, quantize_int8, snap_to_bits


def test_snap_to_bits_keeps_2_to_the_bits_levels_per_channel() -> None:
    w = np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32)
    w[:, 3] *= 100  # one column far larger: per-channel scales keep the others fine
    for bits in (2, 3, 4):
        q = snap_to_bits(w, bits, axis=1)
        for j in range(w.shape[1]):
            assert np.unique(q[:, j]).size <= 2**bits - 1
        assert np.abs(q - w).max(axis=0)[3] > np.abs(q - w).max(axis=0)[0]
    np.testing.assert_array_equal(snap_to_bits(w, 8, axis=1), w)
    assert np.abs(snap_to_bits(w, 2, 1) - w).mean() > np.abs(snap_to_bits(w, 4, 1) - w).mean()
    with pytest.raises(ConfigError, match=r"\[2, 8\]"):
        snap_to_bits(w, 1, axis=1)


def test_half_precision_converts_floats_only() -> None:
    state = {"a": np.ones(3, np.float32), "ids": np.arange(3), "keep": np.ones(2, np.float32)}
    out = half_precision(state, keep=("keep",))
    assert out["a"].dtype == np.float16
    assert out["ids"].dtype == state["ids"].dtype
    assert out["keep"].dtype == np.float32


def _matmul_graph(path: Path, w: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_graph_optimisation_and_int8_on_a_real_graph(tmp_path: Path) -> None:
    import onnx

    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 200)).astype(np.float32)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    fp32 = tmp_path / "model.onnx"
    _matmul_graph(fp32, w)
    optimize_graph(fp32)
    assert has_graph(tmp_path)
    np.testing.assert_allclose(OnnxGraph(tmp_path, "test").run({"x": x})[0], x @ w, rtol=1e-5, atol=1e-5)
    outs = {}
    for bits in (8, 2):
        q = tmp_path / f"q{bits}" / "model.onnx"
        q.parent.mkdir()
        info = quantize_int8(fp32, q, bits)
        assert info["bits"] == bits
        ops = {n.op_type for n in onnx.load(str(q)).graph.node}
        assert ops & {"DynamicQuantizeMatMul", "MatMulInteger"}, ops
        outs[bits] = OnnxGraph(q, "test").run({"x": x})[0]
    err8, err2 = (np.abs(outs[b] - x @ w).mean() for b in (8, 2))
    assert err8 < 0.05 * np.abs(x @ w).mean()
    assert err2 > 5 * err8  # the coarse grid is lossy, as it is meant to be


def test_a_bad_graph_or_thread_count_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ConfigError, match="cannot load"):
        OnnxGraph(tmp_path, "test")
    monkeypatch.setenv("REPLAYREC_ORT_THREADS", "zero")
    with pytest.raises(ConfigError, match="REPLAYREC_ORT_THREADS"):
        OnnxGraph(tmp_path, "test")
    with pytest.raises(ConfigError, match="no ONNX graph"):
        OnnxGraph(tmp_path / "missing", "test", threads=1)


def test_optimize_refuses_unknown_methods_and_bits_outside_int8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown optimisation method 'int4'"):
        optimize_artifact(tmp_path, "int4")
    with pytest.raises(ConfigError, match="int8 only"):
        optimize_artifact(tmp_path, "fp16", bits=4)
    with pytest.raises(ConfigError, match="not a replayrec model artifact"):
        optimize_artifact(tmp_path, "fp16")


def test_the_optimize_gate_config(tmp_path: Path) -> None:
    assert GateConfig().optimize.method is None
    assert GateConfig().optimize.max_loss == 0.01
    path = tmp_path / "gates.yaml"
    path.write_text("optimize: {method: int8, bits: 4, max_loss: 0.005}\n")
    gate = load_gates(path).optimize
    assert (gate.method, gate.bits, gate.max_loss) == ("int8", 4, 0.005)
    path.write_text("optimize: {method: int4}\n")
    with pytest.raises(ConfigError, match=r"optimize\.method"):
        load_gates(path)


def test_the_recommendation_is_the_cheapest_within_the_bound() -> None:
    variants = {
        "numpy-fp32": {"cpu_s_per_1k": 10.0},
        "ort-fp32": {"cpu_s_per_1k": 6.0, "lift_vs_fp32": {"ndcg@10": [0.0, -0.004, 0.004]}},
        "ort-int8": {"cpu_s_per_1k": 4.0, "lift_vs_fp32": {"ndcg@10": [-0.02, -0.05, 0.01]}},
    }
    assert cheapest_within(variants, 0.01) == "ort-fp32"
    assert cheapest_within(variants, 0.06) == "ort-int8"
    assert cheapest_within({"numpy-fp32": {"cpu_s_per_1k": 1.0}}, 0.01) == "numpy-fp32"
