"""The service against the real system on 127.0.0.1: a synthetic world's LightGCN → DIN → RankNet trained and
promoted in a real MLflow registry (sqlite), a Tansu broker, the Spark streaming job filling the online store
in the real Redis, and ``replayrec serve --workers 2`` (uvicorn) answering over HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from replayrec import application as app
from replayrec.bus import BusConfig, RedisStateStore, partition_of, read_events, start_broker
from replayrec.config import Settings
from replayrec.promotion import canary_bucket
from replayrec.runtime import free_port, spawn, stop_process
from replayrec.testing import run_cli
from replayrec_serving import Experiment
from replayrec_serving._ops import service_env, wait_ready
from replayrec_serving._settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "test-admin-token"
LIGHTGCN = ["--epochs", "6", "--set", "eval_every=3", "--set", "dim=16", "--set", "batch_size=1024"]
DIN = ["--epochs", "1", "--set", "item_dim=16", "--set", "mlp_hidden=[32]", "--set", "recall_k=50",
       "--set", "recall={type: lightgcn, model: lightgcn@prod}", "--val-users", "200"]  # fmt: skip
RANKNET = ["--epochs", "2", "--set", "recall_k=50", "--set", "rank_k=20", "--val-users", "200",
           "--set", "recall={type: lightgcn, model: lightgcn@prod}",
           "--set", "rank={type: din, model: din@prod}"]  # fmt: skip
CASCADE = {
    "recall": {"k": 50, "channels": [{"type": "lightgcn", "model": "lightgcn@prod", "quota": 45},
                                     {"type": "popularity", "mode": "recent", "quota": 5}]},
    "rank": {"type": "din", "model": "din@prod", "k": 20},
    "rerank": {"type": "ranknet", "model": "ranknet@prod", "k": 10},
}  # fmt: skip
ITEMCF = {"recall": {"k": 50, "channels": [{"type": "itemcf"}]}, "rank": {"type": "passthrough", "k": 20},
          "rerank": {"type": "passthrough", "k": 10}}  # fmt: skip


def _ok(proc: Any) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(proc.stdout)


def _wait(cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Live:
    url: str
    settings: ServiceSettings
    dirs: dict[str, Path]
    cascade: Path
    itemcf: Path

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode(), dict(exc.headers)

    def rec(self, user: str, **params: Any) -> dict[str, Any]:
        q = "&".join(f"{k}={v}" for k, v in params.items())
        code, body, _ = self.call("GET", f"/v1/recommendations/{user}?{q}")
        assert code == 200, body
        return dict(body)

    def serving(self) -> dict[str, Any]:
        code, body, _ = self.call("GET", "/v1/arms")
        assert code == 200, body
        return dict(body["serving"])

    def cli(self, *args: str) -> str:
        """``replayrec ARGS`` with this system's settings (namespace, broker, Redis) in the environment."""
        env = {**os.environ, **service_env(self.settings)}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.run([sys.executable, "-m", "replayrec", *args], capture_output=True, text=True,
                              env=env, timeout=600, check=False)  # fmt: skip
        return _ok(proc)


@dataclass
class Load:
    """Requests in a background thread until stopped; every answer's status and arm recorded."""

    live: Live
    users: list[str]
    codes: list[int] = field(default_factory=list)
    arms: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (asked at, arm) of each answer
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            u = self.users[i % len(self.users)]
            i += 1
            asked = time.time()
            code, body, _ = self.live.call(
                "GET", f"/v1/recommendations/{u}?k=10", headers={"Cache-Control": "no-cache"}
            )
            self.codes.append(code)
            if code == 200:
                self.arms.append((u, body["arm"], body["versions"]))
                self.timeline.append((asked, body["arm"]))


@contextlib.contextmanager
def load(live: Live, users: list[str]) -> Iterator[Load]:
    ld = Load(live, users)
    threads = [threading.Thread(target=ld.run, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        yield ld
    finally:
        ld.stop.set()
        for t in threads:
            t.join(timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("serving")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    _ok(run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs))
    for plugin, args in (("lightgcn", LIGHTGCN), ("din", DIN), ("ranknet", RANKNET)):
        _ok(run_cli(["train", plugin, *args], **dirs))
        _ok(run_cli(["promote", plugin, "--version", "1", "--to", "prod", "--reason", "test"], **dirs))
    _ok(
        run_cli(["train", "lightgcn", *LIGHTGCN, "--set", "seed=1", "--set", "dim=8"], **dirs)
    )  # v2, not promoted
    cascade, itemcf = root / "cascade.yaml", root / "itemcf.yaml"
    cascade.write_text(yaml.safe_dump(CASCADE))
    itemcf.write_text(yaml.safe_dump(ITEMCF))
    ns = f"t{uuid.uuid4().hex[:10]}"
    port = free_port()
    settings = ServiceSettings(
        state_dir=dirs["state_dir"], data_dir=dirs["data_dir"], bus_namespace=ns,
        bootstrap_servers=f"127.0.0.1:{free_port()}", port=port, workers=2, cascade=cascade,
        admin_token=TOKEN,
        registry_poll_s=1.0, canary_fraction=0.3, warmup_requests=5,
        cors_origins=["http://127.0.0.1:8000"],
    )  # fmt: skip
    core = Settings(**{k: getattr(settings, k) for k in Settings.model_fields})
    proc = None
    with start_broker(core):
        try:
            app.stream_start_detached(core, app.StreamRequest(metrics_port=None))
            app.run_replay(core, app.ReplayRequest(speed="max", metrics_port=None))
            ds = app.open_dataset(core, None)
            app.wait_for_stream(core, app.online_store(core, ds), timeout_s=180)
            log = root / "service.log"
            proc = spawn([sys.executable, "-m", "replayrec", "serve"], log, env=service_env(settings))
            wait_ready(f"http://127.0.0.1:{port}", 240, proc, log)
            yield Live(f"http://127.0.0.1:{port}", settings, dirs, cascade, itemcf)
        finally:
            if proc is not None:
                stop_process(proc.pid, timeout_s=20)
            app.stream_stop(core)
            ds = app.open_dataset(core, None)
            app.online_store(core, ds).clear()
            RedisStateStore(core.redis_url, ns).clear()
            _clear_keys(core.redis_url, ns)


def _clear_keys(url: str, ns: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    for key in r.scan_iter(match=f"{ns}:*", count=1000):
        r.delete(key)
    r.close()


@pytest.fixture(scope="module")
def store_users(live: Live) -> list[str]:
    core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
    users = app.online_store(core, app.open_dataset(core, None)).users()
    assert len(users) > 300
    return users


def test_recommendations_come_from_the_online_profile_through_the_prod_cascade(
    live: Live, store_users
) -> None:
    core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
    store = app.online_store(core, app.open_dataset(core, None))
    for user in store_users[:20]:
        body = live.rec(user, k=10, explain="true")
        prof = store.profile(user)
        assert body["profile_version"] == prof.version > 0
        assert not body["degraded"], body["degraded_reasons"]
        assert len(body["items"]) == 10
        raw = set(app.open_dataset(core, None).catalog.raw_ids[prof.exclude].astype(str))
        assert not raw & {it["item"] for it in body["items"]}  # nothing the user already has
        if body["arm"] == "prod":
            assert body["versions"] == {"lightgcn": "v1", "din": "v1", "ranknet": "v1"}
        first = body["items"][0]["explanation"]
        assert first["reasons"][0].startswith("because you read ")
        assert {"din", "ranknet"} <= set(first["stages"])
        assert [s["stage"] for s in body["stages"]] == ["recall", "rank", "rerank"]


def test_unknown_users_get_recent_popularity_not_an_error(live: Live) -> None:
    body = live.rec("someone-new-to-the-shop", k=5)
    assert body["cold_start"]
    assert not body["degraded"]
    assert len(body["items"]) == 5
    assert body["profile_version"] == 0


def test_a_posted_event_changes_the_next_answer_within_the_freshness_budget(live: Live, store_users) -> None:
    core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
    store = app.online_store(core, app.open_dataset(core, None))
    user = store_users[7]
    before = live.rec(user, k=10)
    again = live.rec(user, k=10)
    assert again["cached"]  # same profile version: the cached answer
    assert [i["item"] for i in again["items"]] == [i["item"] for i in before["items"]]
    top = before["items"][0]["item"]
    meta = store.meta()
    assert meta is not None
    wm = meta.watermarks[partition_of(user, core.event_partitions)]  # on time for the user's partition
    event = {"user": user, "item": top, "action": "purchase",
             "event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wm // 1000))}  # fmt: skip
    t0 = time.monotonic()
    code, body, _ = live.call("POST", "/v1/events", event)
    assert code == 202, body
    assert len(body["accepted"]) == 1
    after = _wait(
        lambda: (r := live.rec(user, k=10))["profile_version"] > before["profile_version"] and r,
        10,
        "the event to reach the profile",
    )
    elapsed = time.monotonic() - t0
    assert after["profile_version"] == before["profile_version"] + 1
    assert not after["cached"]
    assert top not in {i["item"] for i in after["items"]}  # bought: no longer recommended
    print(f"event → changed answer in {elapsed:.2f} s")


def test_an_alias_move_is_served_without_a_failed_request_and_a_broken_version_is_refused(
    live: Live, store_users, tmp_path: Path
) -> None:
    with load(live, store_users[:200]) as ld:
        live.cli("promote", "lightgcn", "--version", "2", "--to", "prod", "--reason", "test: move")
        _wait(lambda: live.serving()["arms"]["prod"]["versions"]["lightgcn"] == "v2", 60, "prod to serve v2")
        _wait(
            lambda: any(v.get("lightgcn") == "v2" for _, a, v in ld.arms[-50:] if a == "prod"),
            30,
            "v2 answers",
        )
        # a version whose weights are broken: registered and promoted, refused by the service
        listing = json.loads(live.cli("registry", "list", "--json"))
        broken = tmp_path / "broken"
        shutil.copytree(listing["lightgcn"][0]["artifact"], broken)
        (broken / "model.safetensors").write_bytes(b"not a model")
        live.cli("registry", "register", str(broken))
        live.cli("promote", "lightgcn", "--version", "3", "--to", "prod", "--reason", "test: broken")
        _wait(lambda: live.serving()["refused"], 60, "the broken version to be refused")
        time.sleep(1.5)
        assert live.serving()["arms"]["prod"]["versions"]["lightgcn"] == "v2"
        live.cli("promote", "lightgcn", "--version", "1", "--to", "prod", "--reason", "test: back")
        _wait(lambda: live.serving()["arms"]["prod"]["versions"]["lightgcn"] == "v1", 60, "prod back on v1")
        time.sleep(1)
    assert len(ld.codes) > 50
    assert set(ld.codes) == {200}, f"{len(ld.codes) - ld.codes.count(200)} failed requests"
    _code, metrics, _ = live.call("GET", "/metrics")
    assert 'replayrec_serve_model_swaps_total{outcome="refused"}' in metrics


def test_canary_routing_follows_the_pipelines_hash(live: Live, store_users) -> None:
    live.cli("promote", "lightgcn", "--version", "2", "--to", "canary", "--reason", "test: canary")
    probe = None
    try:
        core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
        ds = app.open_dataset(core, None)
        salt, fraction = live.settings.canary_salt, live.settings.canary_fraction
        probe = next(u for u in store_users if canary_bucket(ds.user_id(u), salt) < fraction)
        # every worker has the canary arm: a canary user's answers all come from it
        _wait(lambda: all(live.rec(probe)["arm"] == "canary" for _ in range(12)), 60, "the canary arm")
        arms = {u: live.rec(u, k=10)["arm"] for u in store_users[:300]}
        for u, arm in arms.items():
            on_canary = (
                canary_bucket(ds.user_id(u), live.settings.canary_salt) < live.settings.canary_fraction
            )
            assert (arm == "canary") == on_canary, u
        share = sum(a == "canary" for a in arms.values()) / len(arms)
        assert 0.18 < share < 0.42
        got = live.call("GET", "/v1/arms")[1]["arms"]
        assert got["canary"]["requests"] > 0
        assert live.serving()["arms"]["canary"]["versions"]["lightgcn"] == "v2"
    finally:
        from replayrec.registry import ModelRegistry

        ModelRegistry(f"sqlite:///{live.dirs['state_dir'] / 'mlflow.db'}").delete_alias("lightgcn", "canary")
        if probe is not None:
            _wait(
                lambda: all(live.rec(probe)["arm"] == "prod" for _ in range(12)), 60, "the canary arm to go"
            )


def test_an_ab_switch_under_load_applies_everywhere_without_a_failed_request(live: Live, store_users) -> None:
    users = store_users[:120]
    with load(live, users) as ld:
        time.sleep(1)
        t0 = time.monotonic()
        arms = ["--arm", f"control={live.cascade}:1", "--arm", f"itemcf={live.itemcf}:1"]
        live.cli("ab", "set", "swap", *arms, "--salt", "s1", "--shadow", f"shadow={live.itemcf}")
        exp = Experiment.model_validate(json.loads(live.cli("ab", "show", "--json")))
        _wait(
            lambda: sum(a.startswith("ab:") for _, a, _ in ld.arms[-60:]) >= 55, 60, "the experiment to apply"
        )
        stored = exp.updated_ms / 1000  # Redis held it from then; the last answer asked later without it:
        late = [t for t, a in list(ld.timeline) if t > stored and not a.startswith("ab:")]
        switch = max(late) - stored if late else 0.0
        took = time.monotonic() - t0
        print(f"experiment stored → served by every worker within {switch:.2f} s (ab set took {took:.2f} s)")
        mark = len(ld.arms)
        time.sleep(2)
        live.cli("ab", "clear")
        _wait(lambda: all(a == "prod" for _, a, _ in ld.arms[-30:]), 30, "everyone back on prod")
    assert set(ld.codes) == {200}
    during = [(u, a) for u, a, _ in ld.arms[mark:] if a.startswith("ab:")]
    assert during
    for u, a in during:  # each user on the arm the experiment's hash gives
        assert a == f"ab:{exp.arm_for(u)}"
    assert {a for _, a in during} == {"ab:control", "ab:itemcf"}
    _code, metrics, _ = live.call("GET", "/metrics")
    assert 'replayrec_serve_shadow_overlap_count{arm="shadow:shadow"}' in metrics


def test_the_pipelines_canary_gate_judges_the_live_service(live: Live, store_users, tmp_path: Path) -> None:
    listing = json.loads(live.cli("registry", "list", "--json"))["lightgcn"]
    v1 = next(v for v in listing if v["version"] == "1")
    live.cli("registry", "register", v1["artifact"])  # prod's own weights again: a canary that must pass
    version = str(
        max(int(v["version"]) for v in json.loads(live.cli("registry", "list", "--json"))["lightgcn"])
    )
    gates = tmp_path / "gates.yaml"
    canary = {"source": "live", "service_url": live.url, "fraction": live.settings.canary_fraction,
              "observe_s": 90, "min_requests": 20, "poll_s": 0.5, "p99_budget_ms": 2000,
              "latency_factor": 20, "latency_slack_ms": 500}  # fmt: skip
    gates.write_text(yaml.safe_dump({"evaluate": {"baseline": "popularity"}, "stage": {"p99_budget_ms": 500},
                                     "canary": canary}))  # fmt: skip
    with load(live, store_users[:300]) as ld:
        out = json.loads(
            live.cli("pipeline", "run", "lightgcn", "--model", version, "--gates", str(gates),
                     "--cascade", str(live.cascade), "--json")
        )  # fmt: skip
        _wait(
            lambda: live.serving()["arms"]["prod"]["versions"]["lightgcn"] == f"v{version}",
            60,
            "the new prod",
        )
    decision = next(d for d in out["decisions"] if d["step"] == "canary")
    assert decision["passed"], decision
    assert decision["numbers"]["source"] == "live"
    assert decision["numbers"]["canary"]["requests"] >= 20
    assert out["promoted"]
    assert set(ld.codes) == {200}


def test_the_load_test_drives_a_service_running_elsewhere(live: Live, store_users, tmp_path: Path) -> None:
    """``replayrec bench serve --url`` (the delivery workflow's load test against staging): nothing is
    started, every user comes from the service's own ``/v1/users`` (prefix scans of 100), and the delivery's
    load gate reads the result: it passes loose thresholds and exits 1 on a missed one."""
    result = tmp_path / "bench.json"
    out = json.loads(live.cli("bench", "serve", "--url", f"{live.url}/", "--duration", "2", "--repeat", "1",
                              "--json", "--out", str(result)))  # fmt: skip
    setup = out["setup"]
    assert setup["started"] == []
    assert setup["url"] == live.url
    assert setup["service_workers"] == "already running"
    assert setup["users"] == len(store_users)  # the whole store, though one answer holds at most 100
    assert setup["arms"]["prod"] == live.serving()["arms"]["prod"]["versions"]
    assert out["uncached"]["qps"] > 0
    assert out["uncached"]["errors"] == 0
    live.cli("deploy", "load-gate", str(result), "--min-qps", "1", "--max-p99-ms", "60000")
    env = {**os.environ, **service_env(live.settings)}
    proc = subprocess.run([sys.executable, "-m", "replayrec", "deploy", "load-gate", str(result),
                           "--min-qps", "1000000"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "QPS < 1e+06" in proc.stdout


def test_admin_endpoints_need_the_token(live: Live) -> None:
    exp = {"name": "e1", "salt": "s", "arms": [{"name": "a", "cascade": ITEMCF}]}
    assert live.call("PUT", "/v1/admin/experiment", exp)[0] == 401
    assert live.call("PUT", "/v1/admin/experiment", exp, token="wrong")[0] == 401
    assert live.call("POST", "/v1/admin/reload")[0] == 401
    assert live.call("POST", "/v1/replay/pause")[0] == 401
    assert live.call("POST", "/v1/replay/seek", {"to": "2014-01-01"})[0] == 401
    code, body, _ = live.call("GET", "/v1/admin/experiment", token=TOKEN)
    assert code == 200
    assert body["experiment"] is None
    assert live.call("POST", "/v1/admin/reload", token=TOKEN)[0] == 200
    code, body, _ = live.call("POST", "/v1/replay/pause", token=TOKEN)
    assert code == 409  # the replay finished: nothing to pause, said plainly
    assert "replay" in body["detail"]
    assert live.call("GET", "/v1/replay")[0] == 200


def test_bad_input_gets_a_clear_422(live: Live) -> None:
    assert live.call("GET", "/v1/recommendations/bad%20user")[0] == 422
    for k in (0, 101, "x"):
        assert live.call("GET", f"/v1/recommendations/u1?k={k}")[0] == 422
    code, body, _ = live.call("POST", "/v1/events", [{"user": "u"}] * (live.settings.max_batch + 1))
    assert code == 422
    assert "at most" in body["detail"]
    conn = http.client.HTTPConnection("127.0.0.1", live.settings.port, timeout=10)  # headers first: the
    conn.putrequest("POST", "/v1/events")  # service refuses the body before it is sent
    conn.putheader("Content-Length", str(live.settings.max_body_bytes + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    code, body, _ = live.call("POST", "/v1/events", {"user": "u1", "item": "i", "action": "teleport",
                                                     "event_time": "2014-01-01T00:00:00Z"})  # fmt: skip
    assert code == 422
    assert body["rejected"][0]["index"] == 0
    fb = {"user": "u1", "arm": "prod", "impressions": ["a"], "clicks": ["b"]}
    assert live.call("POST", "/v1/feedback", fb)[0] == 422
    assert live.call("POST", "/v1/feedback", {**fb, "arm": "nope", "clicks": []})[0] == 422
    code, body, _ = live.call("POST", "/v1/feedback", {**fb, "clicks": ["a"]})
    assert code == 202
    assert body["clicks"] == 1
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    code, _, h = live.call("OPTIONS", "/v1/recommendations/u1", headers=headers)
    assert "access-control-allow-origin" not in {k.lower() for k in h}
    headers["Origin"] = "http://127.0.0.1:8000"
    code, _, h = live.call("OPTIONS", "/v1/recommendations/u1", headers=headers)
    assert {k.lower(): v for k, v in h.items()}["access-control-allow-origin"] == "http://127.0.0.1:8000"


def test_metrics_cover_endpoints_arms_stages_cache_and_versions(live: Live, store_users) -> None:
    live.rec(store_users[3])
    live.rec(store_users[3])
    code, text, _ = live.call("GET", "/metrics")
    assert code == 200
    for needle in (
        'replayrec_serve_request_seconds_bucket{arm="prod",endpoint="recommendations"',
        'replayrec_serve_stage_seconds_bucket{arm="prod"',
        'replayrec_serve_cache_total{result="hit"}',
    ):
        assert needle in text, needle
    info = [ln for ln in text.splitlines() if ln.startswith("replayrec_serve_model_info{")]
    wanted = ('arm="prod"', 'plugin="ranknet"', 'version="v1"')
    assert any(all(w in ln for w in wanted) and ln.endswith(" 1.0") for ln in info), info


def test_readiness_names_what_it_checked(live: Live) -> None:
    code, body, _ = live.call("GET", "/readyz")
    assert code == 200
    assert body["checks"] == {
        **body["checks"],
        "models": True,
        "redis": True,
        "broker": True,
        "store": "ready",
    }
    assert live.call("GET", "/healthz")[0] == 200


def test_schemathesis_finds_no_server_error(live: Live) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures: list[str] = []
    ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        ops += 1

        @settings(max_examples=15, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(timeout=30)
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as exc:  # collected, so every operation is exercised
                failures.append(f"{case.method} {case.formatted_path}: {exc}"[:300])

        check()
    assert ops >= 12
    assert not failures, failures[:5]


@contextlib.contextmanager
def in_process(live: Live, **overrides: Any) -> Iterator[Any]:
    """The same app in this process (FastAPI's TestClient), on the live system's models and stores, with
    some settings changed: the degraded modes."""
    from fastapi.testclient import TestClient

    from replayrec_serving import create_app

    s = live.settings.model_copy(update={"workers": 1, "registry_poll_s": 3600, **overrides})
    with TestClient(create_app(s, watch=False)) as client:
        yield client


def test_redis_unreachable_answers_from_the_request_history_or_popularity(live: Live, store_users) -> None:
    core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
    ds = app.open_dataset(core, None)
    history = [str(ds.catalog.raw_ids[i]) for i in (3, 5, 8)]
    with in_process(live, redis_url="redis://127.0.0.1:1/0") as c:
        r = c.get(
            f"/v1/recommendations/{store_users[0]}", params={"history": ",".join(history), "explain": "true"}
        )
        assert r.status_code == 200
        body = r.json()
        assert body["degraded"]
        assert "redis-unreachable" in body["degraded_reasons"]
        assert body["arm"] == "prod"
        assert len(body["items"]) == 10
        assert not set(history) & {i["item"] for i in body["items"]}
        assert body["items"][0]["explanation"]["reasons"][0].startswith("because you read ")
        r = c.get(f"/v1/recommendations/{store_users[0]}")
        assert r.status_code == 200
        assert r.json()["degraded"]
        assert len(r.json()["items"]) == 10
        assert c.get("/readyz").status_code == 503
        assert c.get("/readyz").json()["checks"]["redis"] is False


def test_a_failing_or_slow_stage_falls_back_to_the_previous_order(live: Live, store_users) -> None:
    from replayrec_serving._settings import FaultSpec

    faults = {"rank": FaultSpec(delay_ms=400), "rerank": FaultSpec(error_rate=1.0)}
    with in_process(
        live, faults=faults, budget_ms={"recall": 1000, "rank": 50, "rerank": 1000}, cache_ttl_s=0
    ) as c:
        codes = set()
        for u in store_users[:5]:
            r = c.get(f"/v1/recommendations/{u}", params={"explain": "true"})
            codes.add(r.status_code)
            body = r.json()
            assert {"rank-timeout", "rerank-error"} <= set(body["degraded_reasons"])
            assert [s["status"] for s in body["stages"]] == ["ok", "timeout", "error"]
            assert len(body["items"]) == 10
            positions = [i["explanation"]["recall_position"] for i in body["items"]]
            assert positions == sorted(positions)  # the recall's own order answered
        assert codes == {200}


def test_broker_down_answers_503_with_retry_after_and_loses_nothing_accepted(
    live: Live, store_users, tmp_path: Path
) -> None:
    core = Settings(**{k: getattr(live.settings, k) for k in Settings.model_fields})
    port = free_port()
    broker = start_broker(
        core.model_copy(update={"state_dir": tmp_path, "bootstrap_servers": f"127.0.0.1:{port}"})
    )
    try:
        with in_process(live, bootstrap_servers=f"127.0.0.1:{port}") as c:
            when = "2014-01-01T00:00:00Z"
            events = [
                {"user": store_users[i], "item": "0", "action": "view", "event_time": when} for i in range(5)
            ]
            r = c.post("/v1/events", json=events)
            assert r.status_code == 202, r.text
            accepted = set(r.json()["accepted"])
            assert len(accepted) == 5
            on_log = {
                e.event.event_id for e in read_events(BusConfig(f"127.0.0.1:{port}", core.bus_namespace))
            }
            assert accepted <= on_log
            broker.stop()
            r = c.post("/v1/events", json=events[0])
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
            assert "unreachable" in r.json()["detail"]
            r = c.get(f"/v1/recommendations/{store_users[0]}")
            assert r.status_code == 200
            assert not r.json()["degraded"]
    finally:
        broker.stop()
