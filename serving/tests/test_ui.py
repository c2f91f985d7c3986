"""The live web UI against the real system on 127.0.0.1: a synthetic world's LightGCN trained and promoted
in a real MLflow registry (sqlite) behind a lightgcn → passthrough cascade, a Tansu broker, the Spark
streaming job filling the online store in the real Redis, a replay controller held paused (the tests move
its clock), and ``replayrec serve --workers 2``. The page is driven in headless Chromium through Playwright
(the system's browser: ``playwright install`` is never run); the browser tests skip when either is missing,
unless ``REPLAYREC_REQUIRE_BROWSER=1`` (CI) makes them fail."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from replayrec import application as app
from replayrec.bus import partition_of, start_broker
from replayrec.config import Settings
from replayrec.features import OnlineFeatures
from replayrec.runtime import free_port, spawn, stop_process
from replayrec.testing import run_cli
from replayrec_serving._ops import service_env, wait_ready
from replayrec_serving._settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "ui-test-admin-token"
LIGHTGCN = ["--epochs", "3", "--set", "eval_every=3", "--set", "dim=16", "--set", "batch_size=1024"]
CASCADE = {"recall": {"k": 50, "channels": [{"type": "lightgcn", "model": "lightgcn@prod"}]},
           "rank": {"type": "passthrough", "k": 20}, "rerank": {"type": "passthrough", "k": 10}}  # fmt: skip
CHROMIUM = os.environ.get("REPLAYREC_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]


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
    core: Settings
    store: OnlineFeatures
    n_groups: int
    timeline_s: tuple[int, int]
    users: list[str] = field(default_factory=list)  # most recently active first

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def get(self, path: str) -> Any:
        code, body = self.call("GET", path)
        assert code == 200, (path, body)
        return body

    def replay_state(self) -> dict[str, Any]:
        return dict(self.get("/v1/replay")["state"])

    def post_event(self, user: str, item: str) -> None:
        """A purchase of ``item`` by ``user``, dated at the watermark of the user's partition (on time)."""
        meta = self.store.meta()
        assert meta is not None
        wm = meta.watermarks[partition_of(user, self.core.event_partitions)]
        event = {"user": user, "item": item, "action": "purchase",
                 "event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wm // 1000))}  # fmt: skip
        code, body = self.call("POST", "/v1/events", event)
        assert code == 202, body
        assert len(body["accepted"]) == 1

    def metric(self, name: str, labels: str = "") -> float:
        text = self.get("/metrics")
        m = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(m.group(1)) if m else 0.0


def _clear_keys(url: str, ns: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    for key in r.scan_iter(match=f"{ns}:*", count=1000):
        r.delete(key)
    r.close()


def _start_replay(core: Settings) -> None:
    """History up to the 90 % point at max speed (the store fills), then a controller from there at one hour
    per second, paused at once: the tests move its clock."""
    ds = app.open_dataset(core, None)
    split = int(np.quantile(ds.events["timestamp"].to_numpy(), 0.9))
    app.run_replay(core, app.ReplayRequest(speed="max", until=str(split), metrics_port=None))
    app.wait_for_stream(core, app.online_store(core, ds), timeout_s=180)
    app.replay_start_detached(core, app.ReplayRequest(speed="3600", metrics_port=None))
    app.replay_command(core, "pause")


def _train(dirs: dict[str, Path]) -> None:
    _ok(run_cli(["train", "lightgcn", *LIGHTGCN], **dirs))
    _ok(run_cli(["promote", "lightgcn", "--version", "1", "--to", "prod", "--reason", "test"], **dirs))


def _by_recency(store: OnlineFeatures) -> list[str]:
    users = store.users()
    profiles = store.profiles(users)
    active = [p for p in profiles if p.version >= 8 and p.last_ms is not None]
    return [p.user for p in sorted(active, key=lambda p: (-(p.last_ms or 0), p.user))]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("ui")
    dirs = {"state_dir": root / "state", "data_dir": root / "no-data"}
    _ok(run_cli(["data", "prepare", "--events", "20000", "--users", "600", "--items", "400"], **dirs))
    cascade = root / "cascade.yaml"
    cascade.write_text(yaml.safe_dump(CASCADE))
    ns = f"tui{uuid.uuid4().hex[:10]}"
    port = free_port()
    settings = ServiceSettings(
        state_dir=dirs["state_dir"], data_dir=dirs["data_dir"], bus_namespace=ns,
        bootstrap_servers=f"127.0.0.1:{free_port()}", port=port, workers=2, cascade=cascade,
        admin_token=TOKEN, canary_fraction=0.0, warmup_requests=5,
    )  # fmt: skip
    core = Settings(**{k: getattr(settings, k) for k in Settings.model_fields})
    proc = None
    with start_broker(core), ThreadPoolExecutor(1) as pool:
        try:
            trained = pool.submit(_train, dirs)  # meanwhile the stream job starts and the store fills
            app.stream_start_detached(core, app.StreamRequest(metrics_port=None))
            _start_replay(core)
            trained.result()
            log = root / "service.log"
            proc = spawn([sys.executable, "-m", "replayrec", "serve"], log, env=service_env(settings))
            wait_ready(f"http://127.0.0.1:{port}", 240, proc, log)
            ds = app.open_dataset(core, None)
            store = app.online_store(core, ds)
            ts = ds.events["timestamp"].to_numpy()
            yield Live(f"http://127.0.0.1:{port}", settings, core, store, store.n_groups,
                       (int(ts.min()), int(ts.max())), _by_recency(store))  # fmt: skip
        finally:
            if proc is not None:
                stop_process(proc.pid, timeout_s=20)
            app.replay_stop(core)
            app.stream_stop(core)
            _clear_keys(core.redis_url, ns)  # the online store, the replay state, the service's keys


# -- plain HTTP ------------------------------------------------------------------------------------------
def test_the_page_and_its_assets_are_served_with_nothing_from_elsewhere(live: Live) -> None:
    for path in ("/ui", "/ui/"):
        with urllib.request.urlopen(f"{live.url}{path}", timeout=10) as r:
            html = r.read().decode()
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/html")
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert 'id="slider"' in html
        assert '<script src="/ui/app.js"' in html
    assets = {name: live.get(f"/ui/{name}") for name in ("app.js", "app.css")}
    for text in (html, *assets.values()):  # offline: no CDN, no remote font (the SVG namespace is a name)
        assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert "EventSource" in assets["app.js"]
    assert live.call("GET", "/ui/nothing.js")[0] == 404
    paths = live.get("/openapi.json")["paths"]
    assert {"/v1/users", "/v1/users/{user_id}", "/v1/system"} <= set(paths)


def test_users_are_searched_by_prefix_in_a_bounded_list(live: Live) -> None:
    body = live.get("/v1/users?limit=5")
    names = [u["user"] for u in body["users"]]
    assert len(names) == 5
    assert names == sorted(names)
    assert all(u["events"] > 0 for u in body["users"])
    every = set(live.store.users())
    prefix = live.users[0][:2]
    body = live.get(f"/v1/users?prefix={prefix}&limit=100")
    assert {u["user"] for u in body["users"]} == {u for u in every if u.startswith(prefix)}
    assert body["complete"]
    assert live.get("/v1/users?prefix=no-such-user-") == {"prefix": "no-such-user-", "users": [],
                                                           "complete": True}  # fmt: skip
    for bad in ("prefix=a%20b", "prefix=a*", "limit=0", "limit=101", "limit=x", f"prefix={'a' * 129}"):
        code, body = live.call("GET", f"/v1/users?{bad}")
        assert code == 422, (bad, body)


def test_a_users_profile_lists_titled_events_and_interest_per_group(live: Live) -> None:
    user = live.users[0]
    body = live.get(f"/v1/users/{user}?events=10")
    prof = live.store.profile(user)
    catalog = app.open_dataset(live.core, None).catalog
    assert body["store"] == "ready"
    assert body["version"] == prof.version
    assert len(body["recent"]) == min(10, prof.recent_items.size)
    times = [e["time_ms"] for e in body["recent"]]
    assert times == sorted(times, reverse=True)  # newest first
    newest = int(prof.recent_items[-1])
    assert body["recent"][0]["item"] == str(catalog.raw_ids[newest])
    assert body["recent"][0]["title"] == catalog.title(newest)
    assert [b["group"] for b in body["interest"]] == list(range(live.n_groups))
    assert sum(b["weight"] for b in body["interest"]) == pytest.approx(1.0, abs=1e-3)
    assert all(b["label"] for b in body["interest"])
    empty = live.get("/v1/users/someone-new-to-the-shop")
    assert (empty["version"], empty["recent"], empty["store"]) == (0, [], "ready")
    assert len(empty["interest"]) == live.n_groups
    assert {b["weight"] for b in empty["interest"]} == {0.0}
    for bad in ("bad%20user", f"{'u' * 129}", f"{user}?events=0", f"{user}?events=51"):
        assert live.call("GET", f"/v1/users/{bad}")[0] == 422, bad


def test_the_system_panel_reports_freshness_traffic_arms_and_versions(live: Live) -> None:
    for u in live.users[:10]:
        live.get(f"/v1/recommendations/{u}?k=10")

    def windowed() -> dict[str, Any] | None:
        live.get(f"/v1/recommendations/{live.users[0]}?k=5")
        body = dict(live.get("/v1/system"))
        if body["traffic"]["window_s"] is None:  # this worker's first sample: no window yet
            time.sleep(0.3)
            return None
        return body

    body = _wait(windowed, 30, "a traffic window on the worker that answered")
    start, end = live.timeline_s
    assert body["timeline"]["start_ms"] == start * 1000
    assert body["timeline"]["end_ms"] == end * 1000
    assert body["replay"]["status"] == "paused"
    assert body["clock_ms"] == body["replay"]["clock_ms"]
    f = body["freshness"]
    assert f["store"] == "ready"
    assert f["applied"] > 1000
    assert start * 1000 <= f["newest_event_ms"] <= end * 1000
    assert f["behind_clock_s"] is not None
    assert f["job"] == "running"
    assert f["freshness_p99_ms"] is not None
    t = body["traffic"]
    assert t["requests"] >= 1
    assert t["qps"] > 0
    assert t["p99_ms"] > 0
    assert body["arms"]["prod"]["versions"] == {"lightgcn": "v1"}
    assert body["arms"]["prod"]["share"] == 1.0
    assert body["serving"]["arms"]["prod"]["versions"] == {"lightgcn": "v1"}


def _sse(live: Live, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", live.settings.port, timeout=20)
    conn.request("GET", path, headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return conn, resp


def _next_event(resp: http.client.HTTPResponse) -> tuple[str, dict[str, Any]] | None:
    """The next ``event:`` block (comments and ``retry:`` skipped); None at the end of the stream."""
    name, data = None, None
    while True:
        line = resp.readline()
        if not line:
            return None
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            data = json.loads(text[6:])
        elif not text and name is not None and data is not None:
            return name, data


def test_the_live_stream_sends_a_first_event_and_ends_at_its_lifetime(live: Live) -> None:
    user = live.users[2]
    t0 = time.monotonic()
    conn, resp = _sse(live, f"/v1/users/{user}/live?lifetime_s=2")
    first = _next_event(resp)
    assert first is not None
    assert first[0] == "change"
    assert first[1]["reason"] == "first"
    assert first[1]["version"] == live.store.profile(user).version
    assert first[1]["status"] == "paused"
    events = []
    while (ev := _next_event(resp)) is not None:
        events.append(ev)
    took = time.monotonic() - t0
    conn.close()
    assert events[-1][0] == "bye"
    assert 1.9 < took < 10, took
    for bad in (f"{user}/live?lifetime_s=0", f"{user}/live?lifetime_s=601", "bad%20user/live"):
        assert live.call("GET", f"/v1/users/{bad}")[0] == 422, bad


def test_the_live_stream_pushes_a_profile_change_and_stops_when_the_client_leaves(live: Live) -> None:
    user = live.users[3]
    before = live.metric("replayrec_serve_ui_streams_closed_total", '{reason="disconnect"}')
    conn, resp = _sse(live, f"/v1/users/{user}/live")
    first = _next_event(resp)
    assert first is not None
    assert _wait(lambda: live.metric("replayrec_serve_ui_streams") >= 1, 10, "the stream to count as open")
    top = live.get(f"/v1/recommendations/{user}?k=1")["items"][0]["item"]
    t0 = time.monotonic()
    live.post_event(user, top)
    ev = _next_event(resp)
    assert ev is not None
    assert ev[0] == "change"
    assert ev[1]["reason"] == "profile"
    assert ev[1]["version"] == first[1]["version"] + 1
    print(f"event posted → pushed to the live stream in {time.monotonic() - t0:.2f} s")
    conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    conn.close()
    _wait(lambda: live.metric("replayrec_serve_ui_streams") == 0, 10, "the stream to end with its client")
    closed = live.metric("replayrec_serve_ui_streams_closed_total", '{reason="disconnect"}')
    assert closed == before + 1


# -- in the browser ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    required = os.environ.get("REPLAYREC_REQUIRE_BROWSER") == "1"
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install playwright; never `playwright install`)"
    if why is None and not os.access(CHROMIUM, os.X_OK):
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set REPLAYREC_CHROMIUM)"
    if why is not None:
        if required:
            pytest.fail(f"REPLAYREC_REQUIRE_BROWSER=1 and {why}")
        pytest.skip(why)
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


@dataclass
class Page:
    """A page with everything that went wrong on it recorded: console errors, uncaught exceptions, failed
    requests and HTTP errors."""

    page: Any
    problems: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.problems, self.problems


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    rec = Page(pg)
    pg.on("console", lambda m: m.type == "error" and rec.problems.append(f"console: {m.text}"))
    pg.on("pageerror", lambda e: rec.problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: rec.problems.append(f"failed: {r.url} {r.failure}"))
    pg.on("response", lambda r: r.status >= 400 and rec.problems.append(f"HTTP {r.status}: {r.url}"))
    pg.on("request", lambda r: r.resource_type == "document" and rec.documents.append(r.url))
    yield rec
    context.close()


def _open(page: Page, live: Live, user: str) -> Any:
    """The page for ``user`` with the admin token in the fragment, once it shows everything."""
    from playwright.sync_api import expect

    pg = page.page
    pg.goto(f"{live.url}/ui/?user={user}#token={TOKEN}")
    expect(pg.locator("#recs li")).to_have_count(10)
    expect(pg.locator("#events tr[data-item]").first).to_be_visible()
    expect(pg.locator("#interest rect.bar")).to_have_count(live.n_groups)
    expect(pg.locator("#live-state")).to_have_attribute("data-state", "on")
    expect(pg.locator("#replay-status")).to_have_text("paused")
    expect(pg.locator("#system dd").first).to_have_text("ready")
    clock = live.replay_state()["clock"]  # the slider shows it (to its 60 s step)
    slider = pg.locator("#slider")
    _wait(lambda: abs(float(slider.input_value()) - clock) <= 60, 10, "the slider at the replay clock")
    return pg


def test_the_page_loads_with_no_console_error_and_no_failed_request(page: Page, live: Live) -> None:
    pg = _open(page, live, live.users[0])
    start, end = live.timeline_s
    slider = pg.locator("#slider")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == (str(start), str(end))
    assert pg.locator("#admin-state").inner_text() == "admin"
    assert "#token" not in pg.url  # the token left the address bar for sessionStorage
    assert pg.locator("#user-list button").count() >= 5
    time.sleep(2.5)  # a few rounds of the page's polling
    assert not re.findall(r"\b(?:null|undefined|NaN|Invalid Date)\b", pg.locator("body").inner_text())
    page.assert_clean()


def test_the_interest_chart_has_one_bar_per_item_group(page: Page, live: Live) -> None:
    user = live.users[0]
    pg = _open(page, live, user)
    bars = pg.locator("#interest rect.bar")
    groups = [int(g) for g in bars.evaluate_all("rs => rs.map(r => r.dataset.group)")]
    assert groups == list(range(live.n_groups))
    shown = [float(w) for w in bars.evaluate_all("rs => rs.map(r => r.dataset.weight)")]
    served = [b["weight"] for b in live.get(f"/v1/users/{user}")["interest"]]
    assert shown == pytest.approx(served, abs=1e-6)
    heights = [float(h) for h in bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")]
    assert heights[int(np.argmax(shown))] == max(heights) > 0  # the tallest bar is the strongest interest
    assert pg.locator("#top-groups li").count() == min(6, sum(w > 0 for w in shown))
    page.assert_clean()


def test_a_posted_event_reaches_the_page_through_the_live_stream(page: Page, live: Live) -> None:
    user = live.users[1]
    pg = _open(page, live, user)
    pg.evaluate("window.__notReloaded = true")
    top = pg.locator("#recs li").first.get_attribute("data-item")
    events = pg.locator("#events tr[data-item]").evaluate_all("rs => rs.map(r => r.dataset.item)")
    assert top not in events
    t0 = time.monotonic()
    live.post_event(user, top)
    pg.wait_for_function(
        "item => document.querySelector('#events tr[data-item]').dataset.item === item"
        ' && !document.querySelector(`#recs li[data-item="${item}"]`)',
        arg=top,
        timeout=20_000,
    )
    print(f"event posted → shown on the page in {time.monotonic() - t0:.2f} s")
    assert pg.evaluate("window.__notReloaded") is True  # the same document: no reload
    assert len(page.documents) == 1
    assert pg.locator("#recs li").count() == 10
    version = live.store.profile(user).version
    assert pg.locator("#live-state").get_attribute("data-version") == str(version)
    page.assert_clean()


def test_a_full_page_screenshot(page: Page, live: Live) -> None:
    from playwright.sync_api import expect

    pg = _open(page, live, live.users[0])
    for u in live.users[:20]:  # some traffic for the system panel
        live.get(f"/v1/recommendations/{u}?k=10")
    expect(pg.locator("#system dd").nth(8)).not_to_have_text("—", timeout=15_000)  # QPS over a window
    expect(pg.locator("#events-rate")).not_to_have_text("—")  # two polls of the replay: a rate
    pg.locator("#recs li").first.hover()
    folder = Path(os.environ.get("REPLAYREC_ARTIFACTS_DIR") or REPO / ".replayrec" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "ui.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("REPLAYREC_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "img" / "ui.png")
    page.assert_clean()


def test_moving_the_slider_seeks_the_replay_and_the_buttons_control_it(page: Page, live: Live) -> None:
    pg = _open(page, live, live.users[0])
    slider = pg.locator("#slider")
    box = slider.bounding_box()
    assert box is not None
    with pg.expect_response(lambda r: r.url.endswith("/v1/replay/seek")) as seek:
        pg.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    assert seek.value.status == 200
    target = float(json.loads(seek.value.request.post_data)["to"])
    start, end = live.timeline_s
    assert start < target < end
    assert abs(target - (start + 0.4 * (end - start))) < 0.03 * (end - start)  # where it was clicked
    _wait(lambda: live.replay_state()["clock"] == target, 10, "the controller's clock at the slider's value")
    assert live.replay_state()["status"] == "paused"
    assert float(slider.input_value()) == target
    pg.locator("#play").click()
    _wait(lambda: live.replay_state()["status"] in ("running", "waiting"), 10, "the replay to run")
    pg.locator("#pause").click()
    _wait(lambda: live.replay_state()["status"] == "paused", 10, "the replay to pause")
    pg.locator("#speed").select_option("86400")
    _wait(lambda: live.replay_state()["speed"] == 86400, 10, "the new speed")
    page.assert_clean()
