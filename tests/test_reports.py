"""``report stages`` and ``report ablation`` end to end on a synthetic world, through the CLI as a user runs
them: real LightGCN, DIN and RankNet training behind a three-channel recall, the paired comparisons, and
the ablation's variants kept apart from the real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replayrec.testing import run_cli

pytestmark = pytest.mark.slow

Dirs = dict[str, Path]
PROFILE = """
lightgcn: {epochs: 2, eval_every: 2, dim: 16, batch_size: 4096}
din:
  epochs: 1
  max_targets: 3000
  valid_users: 300
  recall:
    merge: quota
    channels:
      - {type: lightgcn, model: lightgcn@latest, quota: 40}
      - {type: itemcf, quota: 20}
      - {type: popularity, mode: recent, quota: 10}
ranknet: {epochs: 3, rank_k: 30}
"""


def _json(proc) -> dict:  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dirs, Path, dict]:
    root = tmp_path_factory.mktemp("reports")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    prep = run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs)
    assert prep.returncode == 0, prep.stderr
    profile = root / "profile.yaml"
    profile.write_text(PROFILE)
    args = ["report", "stages", "--train-config", str(profile), "--no-unmasked", "--bootstrap", "50"]
    rows = _json(run_cli([*args, "--json"], **dirs, timeout=900))
    return dirs, profile, rows


def test_stages_compare_every_stage_on_the_same_users(stages) -> None:
    _, _, rows = stages
    assert list(rows) == ["popularity", "itemcf", "recall", "recall+rank", "recall+rank+rerank"]
    assert len({r["n_users"] for r in rows.values()}) == 1, "every row on the same test users"
    final = rows["recall+rank+rerank"]
    for key in ("lift_over_rank", "lift_over_popularity", "lift_over_itemcf"):
        for point, lo, hi in final[key].values():
            assert lo <= point <= hi
    assert set(final["beats_baselines"]) == {"ndcg@10", "hr@10"}
    assert rows["recall"]["label"].startswith("lightgcn + itemcf + popularity recall")
    # population slices per stage, on the same requests
    n = rows["recall"]["n_users"]
    for row in rows.values():
        sl = row["slices"]
        assert {"users:cold", "users:heavy", "items:popular", "items:long-tail"} <= set(sl)
        assert sl["items:popular"]["n_users"] + sl["items:long-tail"]["n_users"] == n
        assert sl["users:cold"]["n_users"] > 0
        means = [sl[k]["ndcg@10"] * sl[k]["n_users"] for k in ("items:popular", "items:long-tail")]
        assert sum(means) / n == pytest.approx(row["ndcg@10"], abs=1e-4), "the slices add up to the mean"
    assert (
        rows["popularity"]["slices"]["items:popular"]["ndcg@10"]
        > rows["popularity"]["slices"]["items:long-tail"]["ndcg@10"]
    ), "a popularity list finds popular targets, not long-tail ones"


def test_ablation_retrains_and_shuffles_each_group_beside_the_real_models(stages) -> None:
    dirs, profile, rows = stages
    args = ["report", "ablation", "--train-config", str(profile), "--bootstrap", "50", "--json"]
    out = _json(run_cli(args, **dirs, timeout=900))
    groups = ("time", "similarity", "upstream")
    expected = {"full", "input", *(f"{k}:{g}" for g in groups for k in ("retrained", "shuffled"))}
    assert expected | {"probe:request a day after the newest history event"} == set(out)
    full = out["full"]
    assert full["model"] == rows["recall+rank+rerank"]["model"], "the full model is the one stages evaluates"
    assert full["ndcg@10"] == pytest.approx(rows["recall+rank+rerank"]["ndcg@10"])
    assert out["input"]["ndcg@10"] == pytest.approx(rows["recall+rank"]["ndcg@10"])
    assert len({r["n_users"] for r in out.values()}) == 1
    state = dirs["state_dir"]
    for g in groups:
        variant = out[f"retrained:{g}"]
        path = Path(variant["model"])
        assert path.is_relative_to(state / "ablation"), "variants are trained apart from the real models"
        meta = json.loads((path / "meta.json").read_text())
        assert (
            meta["train_config"]["drop_features"]
            == {
                "time": ["pop_recent", "age", "last_seen"],
                "similarity": ["sim_last", "sim_recent"],
                "upstream": ["rank_score", "recall", "position"],
            }[g]
        )
        assert meta["stage_config"]["drop"] == meta["train_config"]["drop_features"]
        for point, lo, hi in variant["lift_over_full"].values():
            assert lo <= point <= hi
        assert out[f"shuffled:{g}"]["config"] == {"shuffle": meta["train_config"]["drop_features"]}
    probe = out["probe:request a day after the newest history event"]
    assert probe["request_time"] == "after_history"
    assert set(probe["lift_over_input"]) == {"ndcg@10", "hr@10"}
    # the upstream shuffle breaks what the model leans on most: never better than the full model by much
    assert out["shuffled:upstream"]["ndcg@10"] <= full["ndcg@10"] + 0.01
    # a second run reuses every variant (nothing trained), and ranknet@latest is still the full model
    again = _json(run_cli([*args, "--no-train-missing", "--bootstrap", "0"], **dirs, timeout=900))
    assert {k: v.get("model") for k, v in again.items()} == {k: v.get("model") for k, v in out.items()}
    listed = _json(run_cli(["registry", "list", "--json"], **dirs))
    assert len(listed["ranknet"]) == 1
    assert not list((state / "artifacts" / "ranknet").rglob("*/meta.json"))[1:], "one real ranknet model"
