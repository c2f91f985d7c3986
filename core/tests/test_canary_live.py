"""The *canary* gate's live source against a real (tiny, scripted) HTTP service on 127.0.0.1: the gate sets
the alias, waits for the service to serve the candidate, judges the per-arm counters of ``GET /v1/arms``
over the observation window, and rolls the alias back when it fails. The registry is a fake (not tested)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from replayrec.errors import ConfigError
from replayrec.promotion import CanaryGate, Decision, GateConfig, canary_step, load_gates
from replayrec.promotion._canary_live import arm_window, bucket_quantile
from replayrec.registry import VersionInfo

PLUGIN = "lightgcn"
ROOT = Path(__file__).resolve().parents[2]

Answer = dict[str, Any] | int | bytes  # JSON, an HTTP status, or raw bytes


class _Service:
    """Answers ``GET /v1/arms`` with the scripted answers in turn (the last one repeats) and records the
    registry's canary alias at every request."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.seen_alias: list[str | None] = []
        self.registry: _Registry | None = None
        self.url = ""
        self._lock = threading.Lock()

    def next_answer(self) -> Answer:
        with self._lock:
            self.seen_alias.append(self.registry.aliases.get("canary") if self.registry else None)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v1/arms":
                    self.send_error(404)
                    return
                answer = service.next_answer()
                if isinstance(answer, int):
                    self.send_error(answer)
                    return
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture
def service() -> Iterator[_Service]:
    svc = _Service()
    server = ThreadingHTTPServer(("127.0.0.1", 0), svc.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    svc.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield svc
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _Registry:
    """The three registry calls the canary gate makes, on a dict alias → version."""

    def __init__(self, **aliases: str) -> None:
        self.aliases: dict[str, str] = dict(aliases)

    def by_alias(self, plugin: str, alias: str) -> VersionInfo | None:
        version = self.aliases.get(alias)
        return VersionInfo(plugin, version, (alias,)) if version else None

    def set_alias(self, plugin: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_alias(self, plugin: str, alias: str) -> None:
        self.aliases.pop(alias, None)


def _arm(
    model: str,
    requests: int,
    errors: int = 0,
    events: int | None = None,
    hits: int | None = None,
    buckets: dict[str, int] | None = None,
) -> dict[str, Any]:
    """An arm's cumulative counters as the service reports them (latency: all in the 1–2 ms bucket)."""
    events = requests // 2 if events is None else events
    hits = events // 10 if hits is None else hits
    buckets = {"1": 0, "2": requests, "5": 0, "inf": 0} if buckets is None else buckets
    return {
        "model": model,
        "requests": requests,
        "errors": errors,
        "degraded": 0,
        "events": events,
        "hits": hits,
        "impressions": 0,
        "clicks": 0,
        "error_rate": errors / requests if requests else 0.0,
        "hr": hits / events if events else None,
        "ctr": None,
        "p50_ms": 1.5,
        "p99_ms": 2.0,
        "latency_buckets_ms": buckets,
    }


def _answer(version: str, canary: dict[str, Any] | None, prod: dict[str, Any] | None) -> dict[str, Any]:
    arms = {"prod": prod, "canary": canary, "ab:x": _arm("ab-x", 5)}
    serving = {
        "prod": {"arm": "prod", "versions": {PLUGIN: "v3", "din": "v1"}, "key": "k3", "loaded_at": 1.0},
        "canary": {"arm": "canary", "versions": {PLUGIN: version, "din": "v1"}, "key": "kc"},
    }
    return {
        "arms": {k: v for k, v in arms.items() if v is not None},
        "serving": {
            "arms": serving,
            "experiment": None,
            "canary": {"fraction": 0.1, "salt": "replayrec-canary"},
            "refused": {},
            "swaps": 2,
        },
    }


def _gate(url: str, **kw: Any) -> CanaryGate:
    settings: dict[str, Any] = {"observe_s": 2.0, "min_requests": 200, "poll_s": 0.02, **kw}
    return CanaryGate(source="live", service_url=url, **settings)


def _run(url: str, registry: _Registry, **kw: Any) -> tuple[Decision, list[str]]:
    echoed: list[str] = []
    ctx: Any = SimpleNamespace(
        plugin=PLUGIN, gates=GateConfig(canary=_gate(url, **kw)), registry=registry, echo=echoed.append
    )
    return canary_step(ctx, VersionInfo(PLUGIN, "4", ("staging",))), echoed


def _checks(decision: Decision) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.detail) for c in decision.checks}


OLD = _answer("v3", _arm("old", 900), _arm("k3", 5000))
BASE = _answer("v4", _arm("kc", 40), _arm("k3", 6000, events=3000, hits=300))


def test_a_good_live_canary_passes_on_the_counters_since_it_was_served(service: _Service) -> None:
    reg = _Registry(prod="3")
    service.registry = reg
    final = _answer("v4", _arm("kc", 340, events=150, hits=16), _arm("k3", 9000, events=4500, hits=450))
    service.answers = [OLD, OLD, BASE, final]
    decision, echoed = _run(service.url, reg)
    assert decision.passed, decision.reason
    assert reg.aliases == {"prod": "3", "canary": "4"}
    assert service.seen_alias[0] == "4", "the alias is set before the service is read"
    assert set(_checks(decision)) == {
        "service serves canary v4",
        "≥ 200 canary requests observed",
        "error rate ≤ 0.10%",
        "p99 ≤ 50.0 ms",
        "HR@10 not significantly below prod (α=0.05)",
        "latency p99 ≤ 2.0× prod + 2.0 ms",
        "errors not significantly above prod",
    }
    n = decision.numbers
    assert (n["source"], n["service_url"], n["prod_version"]) == ("live", service.url, "3")
    canary, prod = n["canary"], n["prod"]
    assert (canary["requests"], canary["events"], canary["hits"]) == (300, 130, 14), "baseline subtracted"
    assert (prod["requests"], prod["events"], prod["hits"]) == (3000, 1500, 150)
    assert canary["latency_buckets_ms"] == {"1": 0, "2": 300, "5": 0, "inf": 0}
    assert 1 < canary["p99_ms"] <= 2
    assert any("waiting up to 2 s" in line for line in echoed)


@pytest.mark.parametrize("before", [None, "2"])
def test_an_erroring_live_canary_fails_and_rolls_back(service: _Service, before: str | None) -> None:
    reg = _Registry(prod="3", **({"canary": before} if before else {}))
    service.registry = reg
    final = _answer("v4", _arm("kc", 440, errors=60), _arm("k3", 9000, errors=1))
    service.answers = [BASE, final]
    decision, _ = _run(service.url, reg)
    assert not decision.passed
    checks = _checks(decision)
    assert checks["error rate ≤ 0.10%"] == (False, "60 of 400 requests failed")
    assert not checks["errors not significantly above prod"][0]
    assert checks["service serves canary v4"][0]
    assert reg.aliases.get("canary") == before, "rolled back to where it was"
    assert "error rate" in decision.reason


def test_a_slow_or_worse_live_canary_fails(service: _Service) -> None:
    slow = {"1": 0, "2": 0, "50": 0, "75": 300, "inf": 0}
    final = _answer("v4", _arm("kc", 340, events=1000, hits=0, buckets=slow), _arm("k3", 9000))
    service.answers = [BASE, final]
    decision, _ = _run(service.url, _Registry(prod="3"))
    checks = _checks(decision)
    assert not checks["p99 ≤ 50.0 ms"][0]
    passed, detail = checks["latency p99 ≤ 2.0× prod + 2.0 ms"]
    assert not passed
    assert "limit 5.98" in detail
    assert "from latency buckets" in detail
    assert not checks["HR@10 not significantly below prod (α=0.05)"][0]


def test_the_service_never_serving_the_canary_version_fails(service: _Service) -> None:
    reg = _Registry(prod="3")
    service.answers = [OLD]
    decision, _ = _run(service.url, reg, observe_s=0.3)
    assert not decision.passed
    passed, detail = _checks(decision)["service serves canary v4"]
    assert not passed
    assert "never served lightgcn v4 on its canary arm within 0.3 s (it serves v3)" in detail
    assert len(decision.checks) == 1
    assert "canary" not in reg.aliases
    assert decision.numbers["canary"] is None
    assert decision.numbers["source"] == "live"


def test_too_few_canary_requests_fail(service: _Service) -> None:
    service.answers = [BASE, _answer("v4", _arm("kc", 60), _arm("k3", 6500))]
    decision, _ = _run(service.url, _Registry(prod="3"), observe_s=0.3)
    assert not decision.passed
    passed, detail = _checks(decision)["≥ 200 canary requests observed"]
    assert not passed
    assert detail.startswith("20 new canary requests in ")
    assert [c.name for c in decision.checks if not c.passed] == ["≥ 200 canary requests observed"]


def test_a_canary_moved_off_the_version_while_observed_fails(service: _Service) -> None:
    service.answers = [BASE, _answer("v5", _arm("k5", 10), _arm("k3", 6500))]
    decision, _ = _run(service.url, _Registry(prod="3"))
    passed, detail = _checks(decision)["service serves canary v4"]
    assert not passed
    assert detail.endswith("then moved to v5 while observed")


def test_no_prod_arm_and_no_events_pass_those_checks(service: _Service) -> None:
    service.answers = [
        _answer("v4", _arm("kc", 0, events=0), None),
        _answer("v4", _arm("kc", 250, events=0), None),
    ]
    decision, _ = _run(service.url, _Registry())
    assert decision.passed, decision.reason
    assert _checks(decision)["HR@10 vs prod"] == (True, "the service has no prod arm")
    service.answers = [BASE, _answer("v4", _arm("kc", 250, events=0), _arm("k3", 6000, events=3000))]
    decision, _ = _run(service.url, _Registry(prod="3"))
    assert decision.passed, decision.reason
    hr = _checks(decision)["HR@10 not significantly below prod (α=0.05)"]
    assert hr == (True, "no events yet (canary n=0, prod n=0)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_service_fails_with_a_message() -> None:
    reg = _Registry(prod="3", canary="2")
    url = f"http://127.0.0.1:{_closed_port()}"
    decision, _ = _run(url, reg, observe_s=0.2)
    assert not decision.passed
    passed, detail = _checks(decision)["service serves canary v4"]
    assert not passed
    assert detail.startswith(f"service unreachable for 0.2 s: GET {url}/v1/arms: ")
    assert "refused" in detail.lower()
    assert reg.aliases["canary"] == "2"


@pytest.mark.parametrize(
    ("answer", "message"),
    [(500, "HTTP 500"), (b"<html>", "not JSON"), ({"arms": []}, "no 'arms' object")],
)
def test_a_broken_service_fails_with_a_message(service: _Service, answer: Answer, message: str) -> None:
    service.answers = [answer]
    decision, _ = _run(service.url, _Registry(prod="3"), observe_s=0.2)
    passed, detail = _checks(decision)["service serves canary v4"]
    assert not passed
    assert message in detail


def test_a_service_lost_while_observed_fails_on_the_requests_check(service: _Service) -> None:
    service.answers = [BASE, 503]
    decision, _ = _run(service.url, _Registry(prod="3"), observe_s=0.2)
    passed, detail = _checks(decision)["≥ 200 canary requests observed"]
    assert not passed
    assert "HTTP 503" in detail


def test_counters_restart_with_a_new_model_key_and_buckets_give_quantiles() -> None:
    before, after = _arm("a", 500, errors=5), _arm("b", 120, errors=1)
    assert arm_window(before, after)["requests"] == 120, "a new model key restarts the counters"
    assert arm_window(_arm("b", 100), after)["requests"] == 20
    assert arm_window(None, after)["errors"] == 1
    assert bucket_quantile({}, 0.99) is None
    assert bucket_quantile({1.0: 10, 2.0: 90}, 0.5) == pytest.approx(1 + 40 / 90)
    assert bucket_quantile({1.0: 0, 5000.0: 1, float("inf"): 99}, 0.99) == 5000.0


def test_live_gate_config_defaults_and_errors(tmp_path: Path) -> None:
    g = GateConfig().canary
    assert (g.source, g.service_url, g.observe_s, g.min_requests, g.poll_s) == ("simulate", None, 60, 200, 2)
    assert load_gates(ROOT / "configs" / "gates.yaml").canary.source == "simulate"
    f = tmp_path / "g.yaml"
    f.write_text("canary: {source: live, service_url: 'http://127.0.0.1:8000/', observe_s: 5}\n")
    live = load_gates(f).canary
    assert (live.source, live.service_url, live.observe_s) == ("live", "http://127.0.0.1:8000", 5)
    bad = {
        "canary: {source: live}": r"canary\.service_url: .*source: live needs the service's URL",
        "canary: {source: shadow}": r"canary\.source: Input should be 'simulate' or 'live'",
        "canary: {source: live, service_url: 'ftp://x'}": r"canary\.service_url: .*not an http",
        "canary: {poll_s: 0}": r"canary\.poll_s: Input should be greater than 0",
        "canary: {observe_s: -1}": r"canary\.observe_s",
        "canary: {min_requests: 0}": r"canary\.min_requests",
        "canary: {service: 'http://x'}": r"canary\.service: unknown key",
    }
    for text, message in bad.items():
        f.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message):
            load_gates(f)
