"""``replayrec optimize`` and ``replayrec bench variants`` on a synthetic world: real LightGCN → DIN → RankNet
training, real ONNX export and ONNX Runtime sessions, real dynamic INT8 quantisation, a real MLflow registry
(sqlite). Each variant is loaded through the same stage contract as the trained model and compared with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from replayrec.artifacts import ARTIFACT_ONNX, artifact_stage_config, has_graph, load_weights
from replayrec.config import Settings
from replayrec.data import load_dataset
from replayrec.evaluation import build_requests, build_split
from replayrec.plugins import build_stage
from replayrec.stages import Rank, Recall, Rerank, StageContext
from replayrec.testing import run_cli

pytestmark = pytest.mark.slow

Dirs = dict[str, Path]
METHODS = ("fp16", "onnx", "int8")


def _ok(proc) -> dict:  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dirs, dict[str, Path]]:
    """A tiny world with LightGCN, DIN on it and RankNet on both, trained by the CLI, and every plugin's
    three variants made by ``replayrec optimize`` (registered)."""
    root = tmp_path_factory.mktemp("optimize")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "12000", "--users", "400", "--items", "300"], **dirs)
    assert prep.returncode == 0, prep.stderr
    recall = ["--set", "recall={type: lightgcn, model: lightgcn@latest}", "--set", "recall_k=40"]
    rank = ["--set", "rank={type: din, model: din@latest}", "--set", "rank_k=20"]
    din = ["--set", "item_dim=16", "--set", "mlp_hidden=[16]"]
    runs = {
        "lightgcn": ["--epochs", "3", "--set", "dim=16"],
        "din": ["--epochs", "1", *recall, *din],
        "ranknet": ["--epochs", "2", *recall, *rank],
    }
    trained = {p: _ok(run_cli(["train", p, *args, "--json"], **dirs)) for p, args in runs.items()}
    paths = {p: Path(out["artifact"]) for p, out in trained.items()}
    for plugin in list(paths):
        for method in METHODS:
            out = _ok(
                run_cli(
                    ["optimize", plugin, "--model", f"{plugin}@latest", "--method", method, "--json"], **dirs
                )
            )
            paths[f"{plugin}-{method}"] = Path(out["artifact"])
    return dirs, paths


def _stage(dirs: Dirs, plugin: str, artifact: Path):  # type: ignore[no-untyped-def]
    settings = Settings(state_dir=dirs["state_dir"], data_dir=dirs["data_dir"])
    ds = load_dataset("synthetic", settings)
    split = build_split(ds, "loo")
    kind = {"lightgcn": "recall", "din": "rank", "ranknet": "rerank"}[plugin]
    ctx = StageContext(ds.catalog, split.fit, artifact=artifact, seed=0)
    stage = build_stage(kind, plugin, artifact_stage_config(artifact, "synthetic", plugin), ctx)
    requests = build_requests(split.test, np.arange(30, dtype=np.int64), split.history_len)
    return stage, requests


def test_variants_are_new_registered_versions_naming_their_parent(world) -> None:
    dirs, paths = world
    listed = _ok(run_cli(["registry", "list", "--json"], **dirs))
    for plugin in ("lightgcn", "din", "ranknet"):
        versions = {v["artifact"]: v for v in listed[plugin]}
        parent = versions[str(paths[plugin])]
        for method in METHODS:
            variant = paths[f"{plugin}-{method}"]
            assert variant.parent.name == "optimized"
            meta = json.loads((variant / "meta.json").read_text())
            assert meta["optimization"]["method"] == method
            assert meta["optimization"]["parent"] == str(paths[plugin])
            assert versions[str(variant)]["version"] != parent["version"]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{dirs['state_dir'] / 'mlflow.db'}")
    mv = client.search_model_versions("name='replayrec-din'")
    tags = {str(m.version): m.tags for m in mv}
    onnx = next(t for t in tags.values() if t.get("optimization") == "onnx")
    assert onnx["optimized_from"] in tags
    assert "optimization" not in tags[onnx["optimized_from"]]


def test_latest_still_names_the_trained_model(world) -> None:
    dirs, paths = world
    out = _ok(run_cli(["evaluate", "--plugin", "lightgcn", "--model", "lightgcn@latest", "--json"], **dirs))
    assert out["model"] == str(paths["lightgcn"])


def test_what_each_variant_holds(world) -> None:
    _, paths = world
    for plugin in ("lightgcn", "din", "ranknet"):
        assert not has_graph(paths[f"{plugin}-fp16"])
        half = load_weights(paths[f"{plugin}-fp16"], plugin)
        assert {v.dtype for v in half.values() if v.dtype.kind == "f"} == {np.dtype(np.float16)}
        for method in ("onnx", "int8"):
            assert (paths[f"{plugin}-{method}"] / ARTIFACT_ONNX).is_file()
    import onnx

    ops = {n.op_type for n in onnx.load(str(paths["din-int8"] / ARTIFACT_ONNX)).graph.node}
    assert ops & {"DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLinear"}, ops
    fp32_ops = {n.op_type for n in onnx.load(str(paths["din-onnx"] / ARTIFACT_ONNX)).graph.node}
    assert not fp32_ops & {"DynamicQuantizeMatMul", "MatMulInteger"}


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_lightgcn_variants_score_like_the_trained_model(world) -> None:
    dirs, paths = world
    base, requests = _stage(dirs, "lightgcn", paths["lightgcn"])
    assert isinstance(base, Recall)
    ref = np.asarray(base.score_all(requests), dtype=np.float64)
    for method, atol in (("fp16", 5e-3), ("onnx", 1e-4)):
        stage, _ = _stage(dirs, "lightgcn", paths[f"lightgcn-{method}"])
        np.testing.assert_allclose(stage.score_all(requests), ref, atol=atol, rtol=1e-2)
    int8, _ = _stage(dirs, "lightgcn", paths["lightgcn-int8"])
    got = np.asarray(int8.score_all(requests), dtype=np.float64)
    assert not np.allclose(got, ref, atol=1e-6)  # it is quantised ...
    assert min(_rank_corr(g, r) for g, r in zip(got, ref, strict=True)) > 0.9  # ... and ranks alike
    top = [{c.item for c in lst} for lst in int8.retrieve_batch(requests, 20)]
    ref_top = [{c.item for c in lst} for lst in base.retrieve_batch(requests, 20)]
    assert np.mean([len(a & b) / 20 for a, b in zip(top, ref_top, strict=True)]) > 0.7


def test_din_and_ranknet_variants_score_like_the_trained_models(world) -> None:
    dirs, paths = world
    recall, requests = _stage(dirs, "lightgcn", paths["lightgcn"])
    assert isinstance(recall, Recall)
    cands = recall.retrieve_batch(requests, 20)
    din, _ = _stage(dirs, "din", paths["din"])
    assert isinstance(din, Rank)
    items = np.array([[c.item for c in lst] for lst in cands], dtype=np.int64)
    ref = din.logits(requests, items)
    for method, atol in (("fp16", 2e-2), ("onnx", 1e-4), ("int8", None)):
        stage, _ = _stage(dirs, "din", paths[f"din-{method}"])
        got = stage.logits(requests, items)
        if atol is not None:
            np.testing.assert_allclose(got, ref, atol=atol, rtol=1e-2)
        else:
            assert min(_rank_corr(g, r) for g, r in zip(got, ref, strict=True)) > 0.8
        ranked = stage.score_batch(requests, cands)
        explained = {r for lst in ranked for c in lst for r in c.reasons}
        assert explained  # the graph's attention output explains the ranking as DIN's does
        assert all(r.startswith("because you read") for r in explained)
        if method == "onnx":
            want = [[(c.item, c.reasons) for c in lst] for lst in din.score_batch(requests, cands)]
            assert [[(c.item, c.reasons) for c in lst] for lst in ranked] == want
    scored = din.score_batch(requests, cands)
    base, _ = _stage(dirs, "ranknet", paths["ranknet"])
    assert isinstance(base, Rerank)
    for method, atol in (("fp16", 0.05), ("onnx", 1e-4), ("int8", None)):
        stage, _ = _stage(dirs, "ranknet", paths[f"ranknet-{method}"])
        for req, lst in zip(requests[:10], scored[:10], strict=True):
            want = base.w.score(base.features(req, lst))
            got = stage.w.score(stage.features(req, lst))
            if atol is not None:
                np.testing.assert_allclose(got, want, atol=atol, rtol=0.05)
            else:  # activations quantised per call: the order, not every score, survives
                assert _rank_corr(got, want) > 0.8


def test_bad_requests_are_clear_errors_and_write_nothing(world) -> None:
    dirs, paths = world
    before = sorted((dirs["state_dir"] / "artifacts").rglob("meta.json"))
    cases = [
        (
            ["optimize", "lightgcn", "--model", "lightgcn@latest", "--method", "fp16", "--bits", "4"],
            "int8 only",
        ),
        (
            ["optimize", "lightgcn", "--model", str(paths["lightgcn-fp16"]), "--method", "int8"],
            "already an optimised",
        ),
        (
            ["optimize", "popularity", "--model", str(paths["lightgcn"]), "--method", "onnx"],
            "not 'popularity'",
        ),
        (["optimize", "lightgcn", "--model", "lightgcn@latest", "--method", "int4"], "Invalid value"),
    ]
    for args, message in cases:
        proc = run_cli(args, **dirs)
        assert proc.returncode != 0
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert sorted((dirs["state_dir"] / "artifacts").rglob("meta.json")) == before


def test_optimizing_again_reuses_the_variant(world) -> None:
    dirs, paths = world
    out = _ok(run_cli(["optimize", "din", "--model", "din@latest", "--method", "onnx", "--json"], **dirs))
    assert out["reused"]
    assert Path(out["artifact"]) == paths["din-onnx"]


def test_bench_variants_reports_every_variant_on_the_same_users(world) -> None:
    dirs, _ = world
    args = [
        "bench",
        "variants",
        "--requests",
        "40",
        "--repeat",
        "1",
        "--eval-users",
        "120",
        "--n-boot",
        "100",
    ]
    out = _ok(run_cli([*args, "--json"], **dirs))
    assert set(out["variants"]) == {"numpy-fp32", "numpy-fp16", "ort-fp32", "ort-int8"}
    for name, v in out["variants"].items():
        for key in ("p50_ms", "p99_ms", "qps", "rss_mb", "size_mb", "ndcg@10", "hr@10", "cpu_s_per_1k"):
            assert np.isfinite(v[key]), (name, key)
            assert v[key] >= 0, (name, key)
        assert v["p50_ms"] <= v["p99_ms"]
        assert set(v["stages"]) == {"recall", "rank", "rerank+rules"}
        assert set(v["models"]) == {"lightgcn", "din", "ranknet"}  # each model alone, interleaved
        assert all(t["p50_ms"] <= t["p99_ms"] for t in v["models"].values())
        assert set(v["own_process"]) == {"p50_ms", "p99_ms"}
        assert v["ndcg@10_ci"][0] <= v["ndcg@10"] <= v["ndcg@10_ci"][1]
    fp32 = out["variants"]["numpy-fp32"]
    assert out["variants"]["numpy-fp16"]["size_mb"] < fp32["size_mb"]
    assert out["variants"]["ort-fp32"]["hr@10"] == pytest.approx(fp32["hr@10"], abs=0.02)
    lift = out["variants"]["ort-fp32"]["lift_vs_fp32"]["ndcg@10"]
    assert lift[1] <= 0 <= lift[2] or abs(lift[0]) < 1e-9
    assert out["recommended"] in out["variants"]
    assert set(out["skipped"]) == {"gpu-torch", "on-device"}
