"""`replayrec train ranknet` on DIN-ranked lists of a tiny synthetic world; the full cascade in reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from replayrec.testing import run_cli


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train-ranknet")
    d = {"state_dir": root / "state", "data_dir": root / "no-data"}
    assert (
        run_cli(["data", "prepare", "--events", "8000", "--users", "400", "--items", "300"], **d).returncode
        == 0
    )
    din = ["train", "din", "--epochs", "2", "--set", "recall={type: itemcf}", "--set", "recall_k=50"]
    proc = run_cli([*din, "--set", "item_dim=16", "--set", "mlp_hidden=[16]"], **d)
    assert proc.returncode == 0, proc.stderr
    return d


def test_train_evaluate_and_report_the_full_cascade(dirs) -> None:
    args = [
        "train",
        "ranknet",
        "--epochs",
        "4",
        "--json",
        "--set",
        "recall={type: itemcf}",
        "--set",
        "recall_k=50",
    ]
    proc = run_cli([*args, "--set", "rank_k=20"], **dirs)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    art = Path(out["artifact"])
    up = json.loads((art / "upstream.json").read_text())
    assert up["rank"]["type"] == "din"
    assert up["rank"]["model"].startswith(str(dirs["state_dir"]))
    assert up["rank_k"] == 20
    assert json.loads((art / "meta.json").read_text())["stage_config"]["rank_stage"] == "din"

    ev = run_cli(
        ["evaluate", "--plugin", "ranknet", "--model", "ranknet@latest", "--json", "--bootstrap", "50"],
        **dirs,
    )
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout)
    assert {"ndcg@10", "hr@10", "recall@20", "ci", "auc_scope"} <= set(res)
    assert "recall@50" not in res, "the list is the rank stage's top 20"

    rep = run_cli(
        [
            "report",
            "stages",
            "--recall",
            "itemcf",
            "--rank-model",
            "din@latest",
            "--bootstrap",
            "50",
            "--json",
        ],
        **dirs,
    )
    assert rep.returncode == 0, rep.stderr
    rows = json.loads(rep.stdout)
    assert list(rows) == ["popularity", "itemcf", "recall", "recall+rank", "recall+rank+rerank"]
    full = rows["recall+rank+rerank"]
    assert full["ci"]["ndcg@10"][0] <= full["ndcg@10"] <= full["ci"]["ndcg@10"][1]
    lift = full["lift_over_rank"]["ndcg@10"]
    assert lift[1] <= lift[0] <= lift[2]
    for m in ("ndcg@10", "hr@10"):  # the quality bar: paired lifts of the full cascade over both baselines
        lows = [full[f"lift_over_{b}"][m][1] for b in ("popularity", "itemcf")]
        assert full["beats_baselines"][m] == all(lo > 0 for lo in lows)


def test_report_stages_is_like_for_like(dirs) -> None:
    """Every row on the same upstream models: a reranker over another ranker is refused with the reason,
    and each row is also reported without history masking."""
    base = ["report", "stages", "--recall", "itemcf", "--bootstrap", "20", "--json"]
    first = run_cli([*base, "--rank-model", "din@latest"], **dirs)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    ranker = rows["recall+rank"]["model"]
    reranker = rows["recall+rank+rerank"]["model"]
    up = json.loads((Path(reranker) / "upstream.json").read_text())
    assert up["rank"]["model"] == ranker, "the rank row is the DIN the RankNet re-ranks"
    for row in rows.values():
        assert {"ndcg@10", "hr@10", "ci"} <= set(row["unmasked"])
    assert rows["itemcf"]["unmasked"]["ndcg@10"] != rows["itemcf"]["ndcg@10"], "unmasked is another run"

    din = ["train", "din", "--epochs", "1", "--set", "recall={type: itemcf}", "--set", "recall_k=50"]
    other = run_cli([*din, "--set", "item_dim=8", "--set", "mlp_hidden=[8]", "--json"], **dirs)
    assert other.returncode == 0, other.stderr
    new_din = json.loads(other.stdout)["artifact"]
    refused = run_cli([*base, "--rank-model", new_din, "--rerank-model", reranker], **dirs)
    assert refused.returncode == 2
    assert "not like for like" in refused.stderr
    assert ranker in refused.stderr
    assert new_din in refused.stderr
    deeper = Path(dirs["state_dir"]) / "reranker-over-200"  # the same models, another candidate list
    shutil.copytree(reranker, deeper)
    (deeper / "upstream.json").write_text(json.dumps({**up, "recall_k": 200}))
    other_list = run_cli([*base, "--rank-model", ranker, "--rerank-model", str(deeper)], **dirs)
    assert other_list.returncode == 2
    assert "top 200 recall candidates, the rank row ranks the top 50" in other_list.stderr
    missing = run_cli([*base, "--rank-model", new_din, "--no-train-missing"], **dirs)
    assert missing.returncode == 2
    assert "no trained ranknet model re-ranks" in missing.stderr
