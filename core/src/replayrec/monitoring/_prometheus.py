"""Prometheus for replayrec: the binaries (from PATH, a cache, or Debian's packages unpacked into it), the
committed rules (``deploy/monitoring/prometheus/``), the generated configuration and ``promtool``'s checks.

The binaries come from Debian's ``prometheus`` (server, ``promtool``) and ``prometheus-alertmanager``
(``prometheus-alertmanager``, ``amtool``) packages: ``apt-get download`` (any user) and ``dpkg -x`` into
``<deploy cache>/<package>/<debian version>/``. No maintainer script runs, nothing is installed system-wide.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from replayrec.config import Settings
from replayrec.errors import ConfigError, ReplayrecError
from replayrec.infra import deploy_cache_dir, deploy_dir

__all__ = [
    "JOBS",
    "PROMETHEUS_RULE",
    "PrometheusTools",
    "prometheus_config",
    "prometheus_rule",
    "prometheus_rule_path",
    "prometheus_tools",
    "render_prometheus_rule",
    "rule_files",
    "rule_tests_dir",
    "rules_dir",
    "write_prometheus_config",
]

log = logging.getLogger("replayrec.monitoring")

#: the scrape jobs the rules know (``up{job=...}``, the metric families of each)
JOBS = ("service", "stream", "replay", "monitor")
_VERSION = re.compile(r"version (\S+)")
_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
# package → {binary inside the package's usr/bin: the names it may have on PATH}
_PROMETHEUS_BINS = {"prometheus": ("prometheus",), "promtool": ("promtool",)}
_ALERTMANAGER_BINS = {
    "prometheus-alertmanager": ("alertmanager", "prometheus-alertmanager"),
    "amtool": ("amtool",),
}


@dataclass(frozen=True)
class PrometheusTools:
    """The Prometheus binaries this machine runs, and where they came from (``path``, ``cache`` or
    ``download``; ``seconds``: how long obtaining them took). Alertmanager is optional."""

    prometheus: Path
    promtool: Path
    version: str
    alertmanager: Path | None = None
    amtool: Path | None = None
    alertmanager_version: str | None = None
    assets: Path | None = None  # the web UI's files (Debian keeps them out of the binary)
    source: str = "path"
    seconds: float = 0.0


@dataclass(frozen=True)
class _Found:
    bins: dict[str, Path]
    version: str
    source: str
    root: Path | None


def prometheus_tools(*, alertmanager: bool = True, cache_dir: Path | None = None) -> PrometheusTools:
    """``prometheus`` and ``promtool`` (and ``alertmanager`` / ``amtool`` when ``alertmanager``): from PATH,
    else from ``cache_dir`` (default ``<deploy_cache_dir()>``), else downloaded into it. Each binary is run
    with ``--version``. :class:`ReplayrecError` naming what failed when none of the three works; a missing
    Alertmanager only leaves its fields ``None`` (with a warning)."""
    cache = cache_dir or deploy_cache_dir()
    start = time.perf_counter()
    prom = _package_bins("prometheus", _PROMETHEUS_BINS, cache)
    am: _Found | None = None
    if alertmanager:
        try:
            am = _package_bins("prometheus-alertmanager", _ALERTMANAGER_BINS, cache)
        except ReplayrecError as exc:
            log.warning("Alertmanager unavailable: %s", exc)
    seconds = round(time.perf_counter() - start, 2)
    source = "download" if "download" in (prom.source, am.source if am else "") else prom.source
    assets = prom.root / "usr" / "share" / "prometheus" / "web" if prom.root else None
    return PrometheusTools(
        prometheus=prom.bins["prometheus"],
        promtool=prom.bins["promtool"],
        version=prom.version,
        alertmanager=am.bins["prometheus-alertmanager"] if am else None,
        amtool=am.bins["amtool"] if am else None,
        alertmanager_version=am.version if am else None,
        assets=assets if assets and assets.is_dir() else None,
        source=source,
        seconds=seconds,
    )


def _package_bins(package: str, names: Mapping[str, Sequence[str]], cache: Path) -> _Found:
    on_path = {b: next((Path(p) for n in alts if (p := shutil.which(n))), None) for b, alts in names.items()}
    if all(on_path.values()):
        found = {b: p for b, p in on_path.items() if p is not None}
        return _Found(found, _verify(found), "path", None)
    folder = cache / package
    root = _cached_root(folder, names)
    source = "cache"
    if root is None:
        try:
            with _locked(folder):
                root = _cached_root(folder, names) or _download(package, folder)
        except (ReplayrecError, OSError) as exc:
            wanted = " and ".join(alts[0] for alts in names.values())
            raise ReplayrecError(f"{wanted}: not on PATH, not cached in {folder}, and {exc}") from exc
        source = "download"
    found = {b: root / "usr" / "bin" / b for b in names}
    return _Found(found, _verify(found), source, root)


def _cached_root(folder: Path, names: Mapping[str, Sequence[str]]) -> Path | None:
    """The newest version unpacked in ``folder`` holding every binary (apt is asked only when none is:
    a cached version stays in use until its folder is removed)."""
    for root in sorted(folder.glob("[0-9]*"), key=lambda p: _version_key(p.name), reverse=True):
        if all((root / "usr" / "bin" / b).is_file() for b in names):
            return root
    return None


def _version_key(version: str) -> list[tuple[int, str]]:
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.+~-]", version)]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One download at a time per package (two test sessions may race for the first one)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _download(package: str, folder: Path) -> Path:
    """``apt-get download`` + ``dpkg -x`` into ``folder/<version>`` (through a temporary folder and a
    rename: a half-unpacked package is never taken for a cached one)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{package}-", dir=folder) as tmp:
        _run(["apt-get", "download", package], f"apt-get download {package}", cwd=tmp)
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not debs:
            raise ReplayrecError(f"apt-get download {package} left no .deb in {tmp}")
        version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], "dpkg-deb -f").strip()
        unpacked = Path(tmp) / "root"
        _run(["dpkg", "-x", str(debs[0]), str(unpacked)], f"dpkg -x {debs[0].name}")
        target = folder / version
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    log.info("%s %s downloaded into %s in %.1f s", package, version, target, time.perf_counter() - start)
    return target


def _run(argv: list[str], what: str, cwd: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplayrecError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        hint = " (no package lists: apt-get update)" if "Unable to locate" in proc.stderr else ""
        raise ReplayrecError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}{hint}")
    return proc.stdout


def _verify(bins: Mapping[str, Path]) -> str:
    """Run each binary with ``--version``; the version the first one prints."""
    versions = []
    for name, path in bins.items():
        try:
            proc = subprocess.run(
                [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReplayrecError(f"{name} ({path}) does not run: {exc}") from exc
        match = _VERSION.search(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not match:
            raise ReplayrecError(f"{name} --version ({path}) failed: {(proc.stdout + proc.stderr)[-300:]}")
        versions.append(match.group(1))
    return versions[0]


def rules_dir(settings: Settings | None = None) -> Path:
    """``deploy/monitoring/prometheus/rules`` of the checkout (beside ``infra/``, like ``deploy/k8s``)."""
    return deploy_dir(settings or Settings()) / "monitoring" / "prometheus" / "rules"


def rule_tests_dir(settings: Settings | None = None) -> Path:
    """``deploy/monitoring/prometheus/tests``: the rules' unit tests (``promtool test rules``)."""
    return rules_dir(settings).parent / "tests"


def rule_files(settings: Settings | None = None) -> list[Path]:
    """The committed rule files, absolute; :class:`ConfigError` when the checkout has none."""
    folder = rules_dir(settings).resolve()
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise ConfigError(
            f"no Prometheus rule files in {folder} (REPLAYREC_INFRA_DIR names the checkout's infra/)"
        )
    return files


def prometheus_config(
    targets: Mapping[str, Sequence[str]],
    *,
    scrape_interval_s: float = 15,
    evaluation_interval_s: float = 15,
    rule_files: Sequence[Path] | None = None,
    alertmanagers: Sequence[str] = (),
) -> dict[str, Any]:
    """The Prometheus configuration: one static scrape job per entry of ``targets`` (``job`` → ``host:port``
    of its ``/metrics``; jobs from :data:`JOBS`), the committed rules (absolute paths; default
    :func:`rule_files`), and ``alertmanagers`` (``host:port``) to notify."""
    unknown = sorted(set(targets) - set(JOBS))
    if unknown:
        raise ConfigError(f"unknown scrape jobs {unknown}: the rules know {list(JOBS)}")
    bad = [t for ts in (*targets.values(), alertmanagers) for t in ts if not _TARGET.match(t)]
    if bad or scrape_interval_s <= 0 or evaluation_interval_s <= 0:
        raise ConfigError(f"targets are host:port and intervals positive: {bad or 'an interval is not'}")
    files = list(rule_files) if rule_files is not None else _default_rule_files()
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": _duration(scrape_interval_s),
            "scrape_timeout": _duration(min(10.0, scrape_interval_s)),  # never longer than the interval
            "evaluation_interval": _duration(evaluation_interval_s),
        },
        "rule_files": [str(Path(f).resolve()) for f in files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(ts)}]} for job, ts in targets.items() if ts
        ],
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return config


def _default_rule_files() -> list[Path]:
    return rule_files()


def _duration(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


#: the cluster's copy of the rules: a PrometheusRule kube-prometheus-stack selects (label release)
PROMETHEUS_RULE = Path("k8s/base/monitor/prometheusrule.yaml")
_RULE_HEADER = (
    "# Generated from deploy/monitoring/prometheus/rules by `replayrec monitor rules --write`: do not edit.\n"
    "# The rules Prometheus runs here (promtool-tested), for the cluster's kube-prometheus-stack.\n"
)


def prometheus_rule(settings: Settings | None = None) -> dict[str, Any]:
    """The committed rule files as one ``monitoring.coreos.com/v1`` PrometheusRule (their groups in file
    order), labelled for kube-prometheus-stack's rule selector."""
    groups: list[Any] = []
    for path in rule_files(settings):
        doc = yaml.safe_load(path.read_text()) or {}
        groups.extend(doc.get("groups") or [])
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "replayrec", "labels": {"release": "monitoring"}},
        "spec": {"groups": groups},
    }


def render_prometheus_rule(settings: Settings | None = None) -> str:
    return _RULE_HEADER + yaml.safe_dump(prometheus_rule(settings), sort_keys=False, width=100)


def prometheus_rule_path(settings: Settings | None = None) -> Path:
    return deploy_dir(settings or Settings()) / PROMETHEUS_RULE


def write_prometheus_config(path: Path, targets: Mapping[str, Sequence[str]], **kwargs: Any) -> Path:
    """:func:`prometheus_config` written as YAML to ``path``; the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(prometheus_config(targets, **kwargs), sort_keys=False))
    return path
