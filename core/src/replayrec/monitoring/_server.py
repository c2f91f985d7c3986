"""A real Prometheus (and Alertmanager) started for a test, a drill or a local stack: written configuration,
own process group and log file, ready when ``/-/ready`` answers 200, stopped with its whole group on exit;
plus the few HTTP API calls the project makes (query, alerts, reload)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from replayrec.errors import ConfigError, ReplayrecError
from replayrec.monitoring._prometheus import PrometheusTools, prometheus_tools
from replayrec.runtime import free_port, spawn, stop_process, wait_started

__all__ = [
    "AlertmanagerServer",
    "PrometheusServer",
    "alertmanager_config",
    "alerts",
    "query",
    "reload",
    "start_alertmanager",
    "start_prometheus",
    "wait_for_alert",
]

_START_TIMEOUT_S = 30.0
_DEBIAN_TEMPLATES = Path("/usr/share/prometheus/alertmanager")


@dataclass(frozen=True)
class PrometheusServer:
    """A running Prometheus: its base URL, port, pid, configuration file and log."""

    url: str
    port: int
    pid: int
    config_path: Path
    log: Path


@dataclass(frozen=True)
class AlertmanagerServer:
    """A running Alertmanager: its base URL, port, pid, configuration file and log."""

    url: str
    port: int
    pid: int
    config_path: Path
    log: Path


def _write_private(path: Path, config: Mapping[str, Any]) -> Path:
    """YAML readable by its owner only (an Alertmanager configuration may hold a bearer token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(dict(config), fh, sort_keys=False)
    return path


def _ready(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


@contextlib.contextmanager
def _running(argv: list[str], log: Path, url: str, what: str, timeout_s: float) -> Iterator[int]:
    proc = spawn(argv, log)
    try:
        try:
            pid = wait_started(proc, log, _ready(url), what, timeout_s)
        except ReplayrecError as exc:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.is_file() else []
            if tail and tail[-1] in str(exc):  # it exited: the message quotes the log already
                raise
            raise ReplayrecError(f"{exc}; the end of its log: {' | '.join(tail) or '(empty)'}") from None
        yield pid
    finally:
        stop_process(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # reaped: no zombie, no ResourceWarning


@contextlib.contextmanager
def start_prometheus(
    config: Mapping[str, Any],
    workdir: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    tools: PrometheusTools | None = None,
    timeout_s: float = _START_TIMEOUT_S,
) -> Iterator[PrometheusServer]:
    """Run Prometheus with ``config`` (written to ``workdir/prometheus.yml``, data in ``workdir/data``) on
    ``host``:``port`` (default: a free port on loopback), lifecycle API enabled; stopped on exit."""
    tools = tools or prometheus_tools(alertmanager=False)
    port = port or free_port(host)
    path = _write_private(workdir / "prometheus.yml", config)
    url = f"http://{host}:{port}"
    argv = [
        str(tools.prometheus),
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={host}:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    if tools.assets is not None:
        argv.append(f"--web.local-assets={tools.assets}")
    log = workdir / "prometheus.log"
    with _running(argv, log, url, f"Prometheus on {host}:{port}", timeout_s) as pid:
        yield PrometheusServer(url, port, pid, path, log)


def alertmanager_config(
    webhook_url: str,
    token: str | None = None,
    *,
    token_file: Path | None = None,
    group_wait_s: float = 1.0,
    group_interval_s: float = 5.0,
    repeat_interval_s: float = 3600.0,
) -> dict[str, Any]:
    """Alertmanager's configuration: alerts labelled ``retrain="true"`` go to ``webhook_url`` (the monitor's
    retraining endpoint), one notification per ``plugin``, with a bearer ``token`` (inline) or ``token_file``
    (preferred: the configuration then holds no secret); every other alert to a receiver that drops it.
    The short default waits suit drills and tests; production raises them."""
    if token is not None and token_file is not None:
        raise ConfigError("alertmanager_config: give the webhook's token or its file, not both")
    hook: dict[str, Any] = {"url": webhook_url, "send_resolved": False}
    if token_file is not None:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    elif token is not None:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    return {
        "route": {
            "receiver": "drop",
            "group_by": ["alertname"],
            "group_wait": f"{group_wait_s:g}s",
            "group_interval": f"{group_interval_s:g}s",
            "repeat_interval": f"{repeat_interval_s:g}s",
            "routes": [{"receiver": "retrain", "matchers": ['retrain="true"'], "group_by": ["plugin"]}],
        },
        "receivers": [{"name": "drop"}, {"name": "retrain", "webhook_configs": [hook]}],
    }


@contextlib.contextmanager
def start_alertmanager(
    config: Mapping[str, Any],
    workdir: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    tools: PrometheusTools | None = None,
    timeout_s: float = _START_TIMEOUT_S,
) -> Iterator[AlertmanagerServer]:
    """Run Alertmanager with ``config`` (``workdir/alertmanager.yml``, mode 0600) on ``host``:``port``, its
    gossip cluster off; stopped on exit. :class:`ReplayrecError` when this machine has no Alertmanager."""
    tools = tools or prometheus_tools()
    if tools.alertmanager is None:
        raise ReplayrecError("Alertmanager is not available (Debian package prometheus-alertmanager)")
    port = port or free_port(host)
    path = _write_private(workdir / "alertmanager.yml", config)
    url = f"http://{host}:{port}"
    argv = _alertmanager_argv(
        tools.alertmanager,
        f"--config.file={path}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address={host}:{port}",
        "--cluster.listen-address=",  # no HA gossip (it would listen on 0.0.0.0:9094)
        "--log.level=warn",
    )
    log = workdir / "alertmanager.log"
    with _running(argv, log, url, f"Alertmanager on {host}:{port}", timeout_s) as pid:
        yield AlertmanagerServer(url, port, pid, path, log)


def _alertmanager_argv(binary: Path, *args: str) -> list[str]:
    """Debian's Alertmanager reads its notification templates from ``/usr/share/prometheus/alertmanager``
    (Debian patched them out of the binary). For one unpacked into the cache, with no such folder on the
    machine, the package's ``usr/share`` is laid over ``/usr/share`` in a private mount namespace of a user
    namespace: a read-only overlay that only this process sees. Any other binary runs as it is (an upstream
    build embeds its templates; Debian's, installed, finds them)."""
    share = binary.parents[1] / "share"
    if (_DEBIAN_TEMPLATES / "default.tmpl").is_file() or not (
        share / "prometheus" / "alertmanager" / "default.tmpl"
    ).is_file():
        return [str(binary), *args]
    unshare = shutil.which("unshare")
    if unshare is None or not _userns_works(unshare) or re.search(r"[,:\s]", str(share)):
        raise ReplayrecError(
            f"Debian's Alertmanager needs its templates in {_DEBIAN_TEMPLATES}: this machine has none, and "
            f"laying {share} over /usr/share needs unshare and unprivileged user namespaces"
        )
    script = 'mount -t overlay overlay -o "lowerdir=$0:/usr/share" /usr/share && exec "$@"'
    return [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        script,
        str(share),
        str(binary),
        *args,
    ]


def _userns_works(unshare: str) -> bool:
    try:
        probe = subprocess.run(
            [unshare, "--user", "--map-root-user", "--mount", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _api(url: str, path: str, params: Mapping[str, str] | None = None, timeout_s: float = 5.0) -> Any:
    try:
        resp = httpx.get(f"{url}{path}", params=params, timeout=timeout_s)
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ReplayrecError(f"Prometheus API {url}{path}: {exc}") from exc
    if resp.status_code != 200 or body.get("status") != "success":
        raise ReplayrecError(f"Prometheus API {url}{path} ({resp.status_code}): {body.get('error', body)}")
    return body["data"]


def query(url: str, promql: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """An instant query (``/api/v1/query``): the result's samples, each ``{"metric": {...}, "value": [t, v]}``
    (a scalar or string result comes back as one sample without labels)."""
    data = _api(url, "/api/v1/query", {"query": promql}, timeout_s)
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def alerts(url: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The active alerts (``/api/v1/alerts``): ``labels``, ``annotations``, ``state`` (pending | firing)."""
    return list(_api(url, "/api/v1/alerts", None, timeout_s)["alerts"])


def wait_for_alert(
    url: str, name: str, *, state: str = "firing", timeout_s: float = 30.0, poll_s: float = 0.25
) -> dict[str, Any]:
    """The first alert ``name`` in ``state``, polling until ``timeout_s`` (then :class:`ReplayrecError`
    listing the alerts seen)."""
    deadline = time.monotonic() + timeout_s
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = alerts(url)
        for alert in seen:
            if alert["labels"].get("alertname") == name and alert["state"] == state:
                return alert
        time.sleep(poll_s)
    names = sorted({f"{a['labels'].get('alertname')}:{a['state']}" for a in seen})
    raise ReplayrecError(f"no {state} {name} alert on {url} within {timeout_s:.0f} s (active: {names})")


def reload(url: str, timeout_s: float = 10.0) -> None:
    """Reload the configuration and rules (``POST /-/reload``, needs ``--web.enable-lifecycle``)."""
    try:
        resp = httpx.post(f"{url}/-/reload", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ReplayrecError(f"reloading Prometheus at {url}: {exc}") from exc
    if resp.status_code != 200:
        raise ReplayrecError(
            f"reloading Prometheus at {url} failed ({resp.status_code}): {resp.text.strip()}"
        )
