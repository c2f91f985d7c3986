"""The serving install profile: a virtual environment with only what loading and running a trained cascade
needs (core's base install and the model plugins without their ``[train]`` extras: no torch, Lightning,
MLflow, Ray or pytest), its size, and the cascade's cold start there beside the full environment."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import replayrec
from replayrec.application._datasets import open_dataset
from replayrec.cascade import Cascade, trained_cascade
from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.plugins import kind_of
from replayrec.registry import StageResolver, resolve_model
from replayrec.stages import Request, StageContext

__all__ = [
    "SERVING_PACKAGES",
    "TRAINING_ONLY",
    "bench_serving_profile",
    "build_serving_env",
    "cold_start_probe",
    "dir_size_mb",
    "importable_modules",
    "source_tree",
]

#: what the serving profile installs from the source tree (core's base install, every plugin's serving code:
#: the baselines serve the built-in cascade and the cold-start fallback)
SERVING_PACKAGES = (
    "core",
    "plugins/baselines",
    "plugins/recall_lightgcn",
    "plugins/rank_din",
    "plugins/rerank_ranknet",
    "serving",
)
#: what the serving profile must not hold
TRAINING_ONLY = ("torch", "lightning", "mlflow", "ray", "pytest")
_PROBE = (
    "import json, sys, time; t0 = time.perf_counter(); "
    "from replayrec.application import cold_start_probe; from replayrec.config import Settings; "
    "out = cold_start_probe(Settings(), sys.argv[1], sys.argv[2], sys.argv[3] or None); "
    "out['import_s'] = round(out.pop('_imported') - t0, 4); print(json.dumps(out))"
)


def source_tree() -> Path:
    """The checkout this core was installed from (editable), holding ``core/`` and ``plugins/``."""
    root = Path(replayrec.__file__).resolve().parents[3]
    if not (root / "core" / "pyproject.toml").is_file():
        raise ConfigError(f"replayrec is not installed from a source checkout ({root}); give --source")
    return root


def dir_size_mb(path: Path) -> float:
    """Bytes of every file below ``path`` (links not followed), in MB."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return round(total / 2**20, 1)


def build_serving_env(venv: Path, source: Path | None = None, timeout: float = 900) -> Path:
    """A fresh virtual environment at ``venv`` with the serving profile installed (non-editable, pinned by
    the lock file); returns its Python. The packages are built from a copy, so no ``build/`` folder is
    left in (or reused from) the source tree."""
    src = source or source_tree()
    lock = src / "requirements" / "lock.txt"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    skip = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "tests")
    with tempfile.TemporaryDirectory(prefix="replayrec-serving-src-") as tmp:
        for p in SERVING_PACKAGES:
            shutil.copytree(src / p, Path(tmp) / p, ignore=skip)
        cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c", str(lock)]
        cmd += [str(Path(tmp) / p) for p in SERVING_PACKAGES]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ReplayrecError(f"installing the serving profile failed: {proc.stderr.strip()[-2000:]}")
    return python


def importable_modules(python: Path, names: Sequence[str] = TRAINING_ONLY) -> dict[str, bool]:
    """For each module name: whether ``python`` can import it."""
    code = (
        "import importlib.util, json, sys; "
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True, timeout=60
    )
    found: dict[str, bool] = json.loads(out.stdout)
    return found


def cold_start_probe(settings: Settings, dataset: str, model: str, user: str | None = None) -> dict[str, Any]:
    """What a serving process does at start: load the dataset's catalogue and events, build the cascade a
    trained rank / rerank ``model`` runs in (``ranknet@latest``: recall → rank → rerank), answer one
    request (``user``'s raw id; default: the first user). Seconds per phase, the answer, and whether any
    training-only module got imported."""
    imported = time.perf_counter()
    plugin = model.split("@", 1)[0] if "@" in model else None
    ds = open_dataset(settings, dataset, prepare=False)
    path = resolve_model(model, settings, ds.name, plugin)
    name = plugin or path.parent.parent.name
    data = ds.interactions()
    ctx = StageContext(catalog=ds.catalog, train=data, seed=settings.seed)
    config = trained_cascade(name, kind_of(name), path, {})
    cascade = Cascade.build(config, StageResolver(settings, ds.name, ctx).context_for)
    cascade.warmup()
    loaded = time.perf_counter()
    uid = ds.user_id(user) if user is not None else 0
    items, times = data.sequences.of(uid)
    ts = int(times.max()) + 1 if times.size else 0
    answer = cascade.recommend(Request.create(uid, ts, items[-50:], times[-50:], exclude=items), k=10)
    answered = time.perf_counter()
    return {
        "_imported": imported,
        "load_s": round(loaded - imported, 4),
        "first_answer_ms": round((answered - loaded) * 1e3, 3),
        "items": [str(ds.catalog.raw_ids[c.item]) for c in answer],
        "training_modules_imported": sorted(m for m in TRAINING_ONLY if m in sys.modules),
    }


def _cold_starts(python: Path, settings: Settings, dataset: str, model: str, repeat: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "REPLAYREC_STATE_DIR": str(settings.state_dir),
        "REPLAYREC_DATA_DIR": str(settings.data_dir),
    }
    env.pop("PYTHONPATH", None)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(python), "-c", _PROBE, dataset, model, ""],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise ReplayrecError(f"cold start with {python} failed: {proc.stderr.strip()[-1500:]}")
        runs.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": wall})
    med = {
        k: round(statistics.median(r[k] for r in runs), 4)
        for k in ("wall_s", "import_s", "load_s", "first_answer_ms")
    }
    return {
        **med,
        "repeats": repeat,
        "items": runs[-1]["items"],
        "training_modules_imported": runs[-1]["training_modules_imported"],
    }


def bench_serving_profile(
    settings: Settings,
    dataset: str | None = None,
    model: str = "ranknet@latest",
    venv: Path | None = None,
    source: Path | None = None,
    repeat: int = 5,
) -> dict[str, Any]:
    """The serving profile's size and cold start (median of ``repeat`` fresh processes: interpreter start,
    imports, loading, first answer) beside the environment this command runs in, on the same artifacts.
    ``venv``: an existing serving environment (default: built now under the state directory)."""
    ds = open_dataset(settings, dataset)
    if venv is None:
        venv = settings.state_dir / "serving-venv"
        build_serving_env(venv, source)
    python = venv / "bin" / "python"
    if not python.is_file():
        raise ConfigError(f"{venv} is not a virtual environment (no bin/python)")
    serving = _cold_starts(python, settings, ds.name, model, repeat)
    full = _cold_starts(Path(sys.executable), settings, ds.name, model, repeat)
    return {
        "dataset": ds.name,
        "model": model,
        "serving": {
            "env": str(venv),
            "env_mb": dir_size_mb(venv),
            "importable": importable_modules(python),
            **serving,
        },
        "full": {
            "env": sys.prefix,
            "env_mb": dir_size_mb(Path(sys.prefix)),
            "importable": importable_modules(Path(sys.executable)),
            **full,
        },
        "same_answer": serving["items"] == full["items"],
    }
