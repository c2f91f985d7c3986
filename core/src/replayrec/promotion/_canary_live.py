"""*canary* gate, live source: after the ``canary`` alias is set, read the running service's per-arm counters
(``GET {service_url}/v1/arms``) instead of replaying traffic. Wait until the service serves the candidate on
its canary arm, take that moment's counters as the baseline, wait for ``min_requests`` new canary requests (or
``observe_s``), and hand each arm's numbers over that window to the checks the simulation uses.

The service is read with the standard library only; an unreachable or malformed service is a failing check,
never an exception."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replayrec.promotion._context import PipelineContext
from replayrec.promotion._gates import CanaryGate, Check

__all__ = ["COUNTERS", "LiveWindow", "arm_window", "bucket_quantile", "fetch_arms", "observe_live"]

#: the cumulative per-arm counters of ``/v1/arms``
COUNTERS = ("requests", "errors", "degraded", "events", "hits", "impressions", "clicks")
_TIMEOUT_S = 5.0


class ServiceError(Exception):
    """The service could not be read (connection, HTTP status, not the expected JSON)."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(arm: Mapping[str, Any], key: str) -> int:
    value = arm.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def fetch_arms(service_url: str, timeout: float = _TIMEOUT_S) -> dict[str, Any]:
    """One ``GET {service_url}/v1/arms``, decoded; :class:`ServiceError` says why it failed."""
    url = f"{service_url}/v1/arms"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # the URL is validated http(s)
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ServiceError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ServiceError(f"GET {url}: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ServiceError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise ServiceError(f"GET {url}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("arms"), dict):
        raise ServiceError(f"GET {url}: the answer has no 'arms' object")
    return doc


def served_version(doc: Mapping[str, Any], arm: str, plugin: str) -> str | None:
    """The version of ``plugin`` the service's ``arm`` serves (``"v4"``), if it says so."""
    versions = _obj(_obj(_obj(doc.get("serving")).get("arms")).get(arm)).get("versions")
    version = _obj(versions).get(plugin)
    return str(version) if version is not None else None


def bucket_quantile(hist: Mapping[float, int], q: float) -> float | None:
    """The ``q`` quantile of a latency histogram (upper bucket edge → count), linear inside a bucket as
    Prometheus does; ``None`` without requests. A quantile in the open last bucket reads its lower edge."""
    total = sum(hist.values())
    if total == 0:
        return None
    target, acc, lo = q * total, 0, 0.0
    for edge in sorted(hist):
        c = hist[edge]
        if c > 0 and acc + c >= target:
            return lo if edge == float("inf") else lo + (edge - lo) * (target - acc) / c
        acc += c
        lo = edge
    return lo


def _buckets(arm: Mapping[str, Any]) -> dict[float, int]:
    out = {}
    for edge, n in _obj(arm.get("latency_buckets_ms")).items():
        try:
            out[float(edge)] = int(n)
        except (TypeError, ValueError):
            continue
    return out


def arm_window(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """An arm's numbers between two reads. The counters are cumulative: the baseline is subtracted, unless
    they restarted in between (a new model key, or fewer requests than before) — then they count from 0."""
    base = before or {}
    if base.get("model") != after.get("model") or _count(after, "requests") < _count(base, "requests"):
        base = {}
    counts = {k: max(_count(after, k) - _count(base, k), 0) for k in COUNTERS}
    hist0 = _buckets(base)
    hist = dict(sorted((edge, max(n - hist0.get(edge, 0), 0)) for edge, n in _buckets(after).items()))
    req, events, shown = counts["requests"], counts["events"], counts["impressions"]
    return {
        "model": after.get("model"),
        **counts,
        "error_rate": counts["errors"] / req if req else 0.0,
        "hr": counts["hits"] / events if events else None,
        "ctr": counts["clicks"] / shown if shown else None,
        "p50_ms": bucket_quantile(hist, 0.5),
        "p99_ms": bucket_quantile(hist, 0.99),
        "latency_buckets_ms": {
            ("inf" if e == float("inf") else f"{e:g}"): n for e, n in sorted(hist.items())
        },
    }


@dataclass
class _Poller:
    gate: CanaryGate
    url: str
    error: str | None = None

    def read(self) -> dict[str, Any] | None:
        try:
            doc = fetch_arms(self.url, min(_TIMEOUT_S, self.gate.observe_s))
        except ServiceError as exc:
            self.error = str(exc)
            return None
        self.error = None
        return doc

    def until(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """Read every ``poll_s`` until ``done`` or ``observe_s`` ran out: the last answer read (or None)."""
        deadline = time.monotonic() + self.gate.observe_s
        seen = None
        while True:
            doc = self.read()
            if doc is not None:
                seen = doc
                if done(doc):
                    return doc
            left = deadline - time.monotonic()
            if left <= 0:
                return seen
            time.sleep(min(self.gate.poll_s, left))


@dataclass
class LiveWindow:
    """What the live canary saw: whether the service served the candidate, and then (``observed`` set)
    each arm's numbers over the observation window."""

    served: Check
    observed: Check | None = None
    canary: dict[str, Any] | None = None
    prod: dict[str, Any] | None = None
    numbers: dict[str, Any] = field(default_factory=dict)


def _wait_for_version(
    ctx: PipelineContext, poller: _Poller, want: str
) -> tuple[Check, dict[str, Any] | None]:
    g, name = ctx.gates.canary, f"service serves canary {want}"
    ctx.echo(f"[canary] waiting up to {g.observe_s:g} s for {poller.url} to serve {ctx.plugin} {want}")
    t0 = time.monotonic()
    doc = poller.until(lambda d: served_version(d, "canary", ctx.plugin) == want)
    if doc is None:
        return Check(name, False, f"service unreachable for {g.observe_s:g} s: {poller.error}"), None
    seen = served_version(doc, "canary", ctx.plugin)
    if seen != want:
        why = f"the service never served {ctx.plugin} {want} on its canary arm within {g.observe_s:g} s"
        return Check(name, False, f"{why} (it serves {seen or 'none'})"), None
    model = _obj(_obj(doc["arms"]).get("canary")).get("model")
    return Check(name, True, f"after {time.monotonic() - t0:.1f} s (model {model})"), doc


def observe_live(ctx: PipelineContext, version: str) -> LiveWindow:
    """Wait for the service to serve canary ``v<version>``, then observe both arms (see the module)."""
    g = ctx.gates.canary
    poller, want = _Poller(g, str(g.service_url)), f"v{version}"
    numbers: dict[str, Any] = {"source": "live", "service_url": g.service_url, "canary": None, "prod": None}
    served, base = _wait_for_version(ctx, poller, want)
    if base is None:
        return LiveWindow(served, numbers=numbers)
    start, base_arms = time.monotonic(), _obj(base["arms"])

    def enough(doc: dict[str, Any]) -> bool:
        new = arm_window(base_arms.get("canary"), _obj(_obj(doc["arms"]).get("canary")))
        return new["requests"] >= g.min_requests or served_version(doc, "canary", ctx.plugin) != want

    ctx.echo(f"[canary] observing up to {g.observe_s:g} s for {g.min_requests} canary requests")
    last = poller.until(enough) or base
    arms, elapsed = _obj(last["arms"]), time.monotonic() - start
    canary = arm_window(base_arms.get("canary"), _obj(arms.get("canary")))
    prod = arm_window(base_arms.get("prod"), _obj(arms["prod"])) if "prod" in arms else None
    now = served_version(last, "canary", ctx.plugin)
    if now != want:
        served = Check(served.name, False, f"{served.detail}, then moved to {now} while observed")
    n = canary["requests"]
    detail = f"{n} new canary requests in {elapsed:.1f} s" + (f"; {poller.error}" if poller.error else "")
    observed = Check(f"≥ {g.min_requests} canary requests observed", n >= g.min_requests, detail)
    prod_version = (served_version(last, "prod", ctx.plugin) or "").removeprefix("v") or None
    numbers |= {"canary": canary, "prod": prod, "prod_version": prod_version, "observed_s": elapsed}
    return LiveWindow(served, observed, canary, prod, numbers)
