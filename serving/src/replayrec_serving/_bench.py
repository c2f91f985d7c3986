"""``replayrec bench serve``: load on the running service over HTTP from a separate process (wrk), for the
full cascade uncached and cached, plus the browsing / erratic scenarios. Starts the service — and the broker,
the stream job and a replay that fills the online store — when they are not running; stops what it started.
With ``--url`` it loads a service running elsewhere (staging) instead, its users read from ``/v1/users``."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from replayrec.application import (
    ReplayRequest,
    StreamRequest,
    bus_start,
    online_store,
    open_dataset,
    replay_start_detached,
    replay_status,
    replay_stop,
    stream_reset,
    stream_start_detached,
    stream_stop,
    wait_for_stream,
)
from replayrec.bus import BusConfig, broker_reachable
from replayrec.cli._common import echo_json, json_option, out_option, repeat_option, settings_of
from replayrec.data import Dataset
from replayrec.errors import ConfigError, ReplayrecError
from replayrec_serving._ops import running_service, wait_ready
from replayrec_serving._settings import ServiceSettings

__all__ = ["bench_serve", "bench_serve_cmd"]

log = logging.getLogger("replayrec.application")
SCRIPT = Path(__file__).with_name("serve.lua")
RESULT = re.compile(r"^RESULT (\{.*\})$", re.M)
SCENARIOS = {
    "uncached": "every request another user, Cache-Control: no-cache (rapid user switching)",
    "cached": "the hot users, Zipf-like repeats (normal browsing)",
    "erratic": "cached reads; every 10th request a POST /v1/events with a random 2000-2014 time",
}


@contextlib.contextmanager
def _system(settings: ServiceSettings, ds: Dataset) -> Iterator[list[str]]:
    """What the service needs: a broker (the events it is posted go there; readiness asks for it) and the
    online store of the namespace, filled — as it is when it is ready, else by the stream job and a max-speed
    replay of the dataset. Yields what was started here; stops it after."""
    store = online_store(settings, ds)
    started: list[str] = []
    broker = None
    try:
        if not broker_reachable(BusConfig.from_settings(settings)):
            broker = bus_start(settings)
            started.append("broker")
        meta = store.meta()
        if meta is None or not meta.ready or meta.applied == 0:
            stream_reset(settings, ds.name)
            stream_start_detached(settings, StreamRequest(dataset=ds.name, metrics_port=None))
            started.append("stream")
            replay = ReplayRequest(dataset=ds.name, speed="max", metrics_port=None, resume=False)
            replay_start_detached(settings, replay)
            started.append("replay")
            log.info("filling the online store: the whole dataset replayed through the stream job")
            _wait_replayed(settings)
            wait_for_stream(settings, store, timeout_s=900)
        yield started
    finally:
        if "replay" in started:
            replay_stop(settings)
        if "stream" in started:
            stream_stop(settings)
        if broker is not None:
            broker.stop()


def _wait_replayed(settings: ServiceSettings, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = replay_status(settings).get("state") or {}
        if st.get("status") in ("finished", "stopped", "failed"):
            return
        time.sleep(1)
    raise ReplayrecError(f"the replay did not finish within {timeout_s:.0f} s")


def _wrk(url: str, mode: str, users: Path, duration_s: int, connections: int, threads: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise ReplayrecError("bench serve drives the service with wrk: apt-get install wrk")
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--latency", "-s",
            str(SCRIPT), url, "--", mode, str(users)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    m = RESULT.search(proc.stdout)
    if proc.returncode != 0 or m is None:
        raise ReplayrecError(f"wrk failed ({proc.returncode}): {proc.stderr[-500:] or proc.stdout[-500:]}")
    raw = json.loads(m.group(1))
    seconds = raw["duration_us"] / 1e6
    return {
        "qps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": int(sum(raw["errors"].values())),
        "requests": raw["requests"],
    }


def _users(settings: ServiceSettings, ds: Dataset, n: int, seed: int) -> list[str]:
    store_users = online_store(settings, ds).users()
    if not store_users:
        raise ReplayrecError("the online store holds no user profile")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(store_users), size=min(n, len(store_users)), replace=False)
    return [store_users[i] for i in sorted(pick.tolist())]


#: the first characters of user ids, for the prefix scans of ``/v1/users`` (at most 100 users an answer)
_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.:@-"


def _service_users(url: str, n: int) -> list[str]:
    """Up to ``n`` users with an online profile in the service at ``url``, read from its ``/v1/users``:
    one prefix scan, then one more per next character wherever an answer was cut short."""
    found: set[str] = set()
    prefixes = [""]
    while prefixes and len(found) < n:
        prefix = prefixes.pop(0)
        query = urllib.parse.urlencode({"prefix": prefix, "limit": 100})
        with urllib.request.urlopen(f"{url}/v1/users?{query}", timeout=30) as r:
            page = json.loads(r.read())
        found.update(u["user"] for u in page["users"])
        if not page["complete"]:
            prefixes += [prefix + c for c in _ID_CHARS]
    if not found:
        raise ReplayrecError(f"the service at {url} lists no user with an online profile (GET /v1/users)")
    return sorted(found)[:n]


def _warm(url: str, users: list[str]) -> None:
    for u in users:
        with urllib.request.urlopen(f"{url}/v1/recommendations/{u}?k=10", timeout=30) as r:
            r.read()


def bench_serve(
    settings: ServiceSettings,
    duration_s: int = 20,
    connections: int = 4,
    threads: int = 1,
    repeat: int = 3,
    users: int = 20_000,
    hot_users: int = 500,
    url: str | None = None,
) -> dict[str, Any]:
    """QPS, p50 / p95 / p99 and errors per scenario (medians over ``repeat`` runs). ``url``: load the service
    running there (nothing is started; its users come from its ``/v1/users``)."""
    if repeat < 1 or duration_s < 1 or connections < 1 or threads < 1:
        raise ConfigError("--repeat, --duration, --connections and --threads must be >= 1")
    if url is not None and not re.fullmatch(r"https?://[^/\s]+", url.rstrip("/")):
        raise ConfigError(f"--url {url!r}: expected http(s)://host[:port]")
    ds, filled = None, list[str]()
    with contextlib.ExitStack() as stack:
        if url is not None:
            url, started = url.rstrip("/"), False
            wait_ready(url, 60)
            all_users = _service_users(url, users)
        else:
            ds = open_dataset(settings, settings.dataset)
            filled = stack.enter_context(_system(settings, ds))
            url, started = stack.enter_context(running_service(settings))
            all_users = _users(settings, ds, users, settings.seed)
        hot = all_users[:hot_users]
        scenarios = {"uncached": all_users, "cached": hot, "erratic": hot}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in scenarios}
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for name, us in scenarios.items():
                files[name] = Path(tmp) / f"{name}.txt"
                files[name].write_text("\n".join(us) + "\n")
            _warm(url, hot)
            for r in range(repeat):
                for name in scenarios:
                    res = _wrk(url, name, files[name], duration_s, connections, threads)
                    runs[name].append(res)
                    log.info(
                        f"run {r + 1}/{repeat} {name}: {res['qps']:,.0f} QPS, p50 {res['p50_ms']:.1f} ms, "
                        f"p99 {res['p99_ms']:.1f} ms, {res['errors']} errors"
                    )
        with urllib.request.urlopen(f"{url}/v1/arms", timeout=10) as resp:
            serving = json.loads(resp.read())["serving"]
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        out[name] = {
            k: round(statistics.median(x[k] for x in rs), 2) for k in ("qps", "p50_ms", "p95_ms", "p99_ms")
        }
        out[name]["errors"] = int(sum(x["errors"] for x in rs))
        out[name]["runs"] = rs
    out["setup"] = {
        "dataset": ds.name if ds is not None else settings.dataset,
        "url": url,
        "duration_s": duration_s,
        "connections": connections,
        "wrk_threads": threads,
        "repeat": repeat,
        "users": len(all_users),
        "hot_users": len(hot),
        "service_workers": settings.workers if started else "already running",
        "started": [*filled, *(["service"] if started else [])],
        "arms": {k: v["versions"] for k, v in serving["arms"].items()},
        "scenarios": SCENARIOS,
    }
    return out


@click.command("serve")
@click.option("--duration", "duration_s", type=int, default=20, show_default=True, help="seconds per run")
@click.option(
    "--connections", type=int, default=4, show_default=True, help="concurrent connections (closed loop)"
)
@click.option("--threads", type=int, default=1, show_default=True, help="wrk threads")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="service workers (when started here)",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--dataset", help="the catalogue (default: the prepared one)")
@click.option("--url", help="load the service running at this URL (e.g. staging) instead: nothing is started")
@repeat_option
@json_option
@out_option
@click.pass_context
def bench_serve_cmd(
    ctx: click.Context,
    duration_s: int,
    connections: int,
    threads: int,
    workers: int,
    port: int,
    dataset: str | None,
    url: str | None,
    repeat: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """The service under load over HTTP (wrk, a separate process): the full cascade uncached and cached."""
    base = settings_of(ctx)
    settings = ServiceSettings(**{k: getattr(base, k) for k in type(base).model_fields}, workers=workers,
                               port=port, dataset=dataset)  # fmt: skip
    res = bench_serve(settings, duration_s, connections, threads, repeat, url=url)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
    if as_json:
        echo_json(res)
        return
    click.echo("| scenario | QPS | p50 ms | p95 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|")
    for name in ("uncached", "cached", "erratic"):
        r = res[name]
        cells = f"{r['qps']:,.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']}"
        click.echo(f"| {name} | {cells} |")
