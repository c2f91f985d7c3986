"""The CLI as a user runs it: one-line errors with a non-zero exit, JSON output, the synthetic fallback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from replayrec.testing import run_cli


def run(args: list[str], tmp_path: Path, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, state_dir=tmp_path / "state", data_dir=data_dir)


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert lines[-1] == errors[0], "the error is the last thing printed"
    assert "Traceback" not in proc.stderr
    assert needle in errors[0]


def test_plugins_list_json(tmp_path: Path) -> None:
    proc = run(["plugins", "list", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = {(p["kind"], p["name"]) for p in json.loads(proc.stdout)}
    assert ("recall", "itemcf") in names
    assert ("recall", "popularity") in names


def test_synthetic_fallback_prepare_evaluate_recommend(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    proc = run(["data", "prepare", "--events", "20000", "--users", "800", "--items", "500"], tmp_path, empty)
    assert proc.returncode == 0, proc.stderr
    assert "using the synthetic world" in proc.stderr
    proc = run(["data", "stats", "--json"], tmp_path, empty)
    stats = json.loads(proc.stdout)
    assert stats["dataset"] == "synthetic"
    assert stats["users"] == 800

    proc = run(["evaluate", "--plugin", "itemcf", "--json", "--bootstrap", "100"], tmp_path, empty)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("ndcg@10", "hr@10", "recall@20", "ndcg@20", "mrr", "auc", "gauc"):
        assert 0.0 <= out[key] <= 1.0
    assert out["ci"]["ndcg@10"][0] <= out["ndcg@10"] <= out["ci"]["ndcg@10"][1]
    assert out["protocol"] == "loo"
    assert out["dataset"] == "synthetic"
    assert (tmp_path / "state" / "reports" / "evaluate-synthetic-loo-itemcf.png").is_file()

    proc = run(["recommend", "--user", "7", "--json"], tmp_path, empty)
    assert proc.returncode == 0, proc.stderr
    recs = json.loads(proc.stdout)["recommendations"]
    assert 0 < len(recs) <= 10
    assert all("recall" in r["scores"] for r in recs)

    # a business rule in the cascade YAML changes the output as configured, and --explain says so
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "recall: {k: 100, type: popularity}\n"
        "rank: {type: passthrough, k: 100}\n"
        "rerank: {type: passthrough, k: 10}\n"
        f"rules: [{{type: block_list, items: ['{recs[0]['item']}']}},\n"
        "        {type: group_cap, max_per_group: 1}]\n"
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text("\n".join(rules.read_text().splitlines()[:3]) + "\n")
    before = json.loads(
        run(["recommend", "--user", "7", "--json", "--config", str(plain)], tmp_path, empty).stdout
    )
    proc = run(["recommend", "--user", "7", "--json", "--config", str(rules)], tmp_path, empty)
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)["recommendations"]
    assert len(after) == 10
    assert recs[0]["item"] not in {r["item"] for r in after}
    assert [r["item"] for r in after] != [r["item"] for r in before["recommendations"]]
    text = run(["recommend", "--user", "7", "--explain", "--config", str(rules)], tmp_path, empty).stdout
    assert "moved up by group_cap" in text
    assert "popularity " in text, "each stage's score is printed"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["evaluate", "--plugin", "nope"],
            "unknown plugin 'nope'; available recall: ease, itemcf, lightgcn, popularity, rank: din, "
            "passthrough",
        ),
        (["evaluate", "--plugin", "itemcf", "--set", "colour=red"], "colour: unknown key"),
        (["recommend", "--user", "no-such-user"], "user 'no-such-user' not found in dataset synthetic"),
        (["evaluate", "--plugin", "itemcf", "--protocol", "given"], "has no given train/test split"),
        (
            ["report", "stages", "--train-config", "no-such.yaml"],
            "training profile no-such.yaml does not exist",
        ),
        (
            ["report", "stages", "--rank", "itemcf"],
            "--recall must name a recall plugin and --rank a rank plugin",
        ),
        (["evaluate", "--plugin", "ranknet"], "rerank plugin 'ranknet' needs --model"),
    ],
)
def test_bad_input_gives_one_line_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    assert (
        run(
            ["data", "prepare", "--events", "3000", "--users", "100", "--items", "80"], tmp_path, empty
        ).returncode
        == 0
    )
    one_line_error(run(args, tmp_path, empty), needle)


def test_missing_data_directory_and_md5_mismatch(tmp_path: Path) -> None:
    one_line_error(
        run(["data", "prepare", "--dataset", "amazon-toys-2014"], tmp_path, tmp_path / "absent"),
        "does not exist",
    )
    folder = tmp_path / "data" / "amazon-toys-2014"
    folder.mkdir(parents=True)
    (folder / "interactions.csv.gz").write_bytes(b"not the real file")
    (folder / "items.csv.gz").write_bytes(b"x")
    one_line_error(
        run(["data", "prepare", "--dataset", "amazon-toys-2014"], tmp_path, tmp_path / "data"),
        "md5 mismatch for",
    )
