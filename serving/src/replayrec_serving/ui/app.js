// replayrec live UI: plain JavaScript, no build step, no third-party code. Reads the service's own API:
// GET /v1/replay, /v1/system, /v1/users, /v1/users/{u}, /v1/recommendations/{u}; the live stream
// /v1/users/{u}/live (server-sent events); admin POSTs /v1/replay/{pause,resume,speed,seek} with the token.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "replayrec.adminToken";
  const REPLAY_POLL_MS = 1000;
  const SYSTEM_POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    user: null,
    source: null,
    timeline: null,
    clock: null, // the replay clock last polled (Unix s)
    dragging: false,
    seekUntil: 0, // ignore polled clocks until then (a seek is on its way)
    lastRate: null, // [wall ms, events published]
    recs: new Set(),
    events: new Set(),
    refreshing: false,
    again: false,
    searchTimer: null,
    soon: null, // a pending clock-driven refresh
    refreshedAt: 0,
  };

  // -- helpers ---------------------------------------------------------------------------------------
  const fmtTime = (ms) => (ms == null ? "—" : new Date(ms).toISOString().slice(0, 16).replace("T", " "));
  const fmtDate = (ms) => (ms == null ? "—" : new Date(ms).toISOString().slice(0, 10));
  const fmtNum = (x, digits = 0) =>
    x == null ? "—" : Number(x).toLocaleString("en-US", { maximumFractionDigits: digits });
  const fmtPct = (x) => (x == null ? "—" : x === 0 ? "0%" : `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`);
  const fmtAgo = (s) => {
    if (s == null) return "—";
    const a = Math.abs(s);
    if (a < 1) return `${(s * 1000).toFixed(0)} ms`;
    if (a < 120) return `${s.toFixed(1)} s`;
    if (a < 7200) return `${(s / 60).toFixed(0)} min`;
    if (a < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  };
  const fmtSpeed = (v) => {
    if (v === "max") return "max";
    const s = Number(v);
    if (s >= 86400) return `${fmtNum(s / 86400, 1)} day/s`;
    if (s >= 3600) return `${fmtNum(s / 3600, 1)} h/s`;
    if (s >= 60) return `${fmtNum(s / 60, 1)} min/s`;
    return `${fmtNum(s, 1)}×`;
  };

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (v != null) node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }

  function say(text, kind = "info") {
    const m = $("message");
    m.textContent = text;
    m.dataset.kind = kind;
    m.hidden = !text;
    clearTimeout(say.timer);
    if (text) say.timer = setTimeout(() => (m.hidden = true), kind === "error" ? 8000 : 3000);
  }

  async function api(path, options = {}) {
    const res = await fetch(path, { cache: "no-store", ...options });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
      throw new Error(`${res.status}: ${detail}`);
    }
    return body;
  }

  // -- the admin token -------------------------------------------------------------------------------
  function readToken() {
    const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search); // not left in the address bar
    }
    showAdmin();
  }

  function showAdmin() {
    const has = Boolean(sessionStorage.getItem(TOKEN_KEY));
    $("admin-state").textContent = has ? "admin" : "read-only";
    $("admin-state").className = has ? "ok" : "muted";
    for (const id of ["play", "pause", "speed", "slider"]) $(id).toggleAttribute("data-admin", has);
  }

  async function admin(path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      say("replay control needs the admin token (field top right, or #token=… in the URL)", "error");
      $("token").focus();
      return null;
    }
    try {
      return await api(path, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
    } catch (err) {
      say(`replay control: ${err.message}`, "error");
      return null;
    }
  }

  // -- the replay bar and the time slider ------------------------------------------------------------
  function setTimeline(tl) {
    if (!tl || state.timeline) return;
    state.timeline = tl;
    const slider = $("slider");
    slider.min = String(Math.floor(tl.start_ms / 1000));
    slider.max = String(Math.ceil(tl.end_ms / 1000));
    $("tl-start").textContent = fmtDate(tl.start_ms);
    $("tl-end").textContent = fmtDate(tl.end_ms);
    if (state.clock != null) slider.value = String(Math.round(state.clock)); // polled before the range was set
  }

  function showReplay(r) {
    const st = r.state;
    const status = st ? (r.running ? st.status : `${st.status} (no controller)`) : "no replay";
    const pill = $("replay-status");
    pill.textContent = status;
    pill.dataset.status = st && r.running ? st.status : "none";
    if (r.clock != null) {
      state.clock = r.clock;
      const ms = r.clock * 1000;
      $("clock").textContent = fmtTime(ms);
      if (!state.dragging && Date.now() > state.seekUntil) $("slider").value = String(Math.round(r.clock));
    }
    if (st) {
      const sel = $("speed");
      const v = String(st.speed);
      if (![...sel.options].some((o) => o.value === v)) sel.append(el("option", { value: v, text: fmtSpeed(v) }));
      if (document.activeElement !== sel) sel.value = v;
      const now = Date.now();
      const prev = state.lastRate;
      if (prev && now - prev[0] > 500) {
        const rate = Math.max(st.published - prev[1], 0) / ((now - prev[0]) / 1000);
        $("events-rate").textContent = fmtNum(rate, rate < 10 ? 1 : 0);
      }
      if (!prev || now - prev[0] > 3000) state.lastRate = [now, st.published];
    }
  }

  async function pollReplay() {
    try {
      showReplay(await api("/v1/replay"));
    } catch (err) {
      $("replay-status").textContent = "unreachable";
      $("replay-status").dataset.status = "none";
    }
  }

  async function seek(seconds) {
    state.seekUntil = Date.now() + 5000;
    $("slider-target").textContent = `seeking to ${fmtTime(seconds * 1000)}…`;
    const res = await admin("/v1/replay/seek", { to: String(seconds) });
    $("slider-target").textContent = res ? `moved to ${fmtTime(seconds * 1000)}` : "";
    state.seekUntil = Date.now() + 1200; // the next poll shows the controller's clock
    if (res) await pollReplay();
  }

  function wireReplay() {
    const slider = $("slider");
    slider.addEventListener("pointerdown", () => (state.dragging = true));
    slider.addEventListener("input", () => {
      state.dragging = true;
      $("slider-target").textContent = `→ ${fmtTime(Number(slider.value) * 1000)}`;
    });
    slider.addEventListener("change", () => {
      state.dragging = false;
      seek(Number(slider.value));
    });
    slider.addEventListener("pointerup", () => setTimeout(() => (state.dragging = false), 0));
    $("play").addEventListener("click", async () => (await admin("/v1/replay/resume")) && pollReplay());
    $("pause").addEventListener("click", async () => (await admin("/v1/replay/pause")) && pollReplay());
    $("speed").addEventListener("change", async (e) => {
      if (await admin("/v1/replay/speed", { speed: e.target.value })) pollReplay();
    });
    const saveToken = () => {
      const v = $("token").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      else sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
      showAdmin();
    };
    $("token-save").addEventListener("click", saveToken);
    $("token").addEventListener("keydown", (e) => e.key === "Enter" && saveToken());
  }

  // -- users -----------------------------------------------------------------------------------------
  async function searchUsers(prefix) {
    try {
      const res = await api(`/v1/users?prefix=${encodeURIComponent(prefix)}&limit=12`);
      const list = $("user-list");
      list.replaceChildren(
        ...res.users.map((u) => {
          const b = el("button", { type: "button", "data-user": u.user, class: u.user === state.user ? "on" : "" },
            el("span", { class: "id", text: u.user }), el("span", { class: "n", text: `${fmtNum(u.events)} ev` }));
          b.addEventListener("click", () => select(u.user));
          return el("li", {}, b);
        }),
      );
      if (!res.users.length) list.append(el("li", { class: "muted", text: "no user with that prefix" }));
      return res.users;
    } catch (err) {
      say(`users: ${err.message}`, "error");
      return [];
    }
  }

  function select(user) {
    if (!user || user === state.user) return;
    state.user = user;
    state.recs = new Set();
    state.events = new Set();
    const url = new URL(location.href);
    url.searchParams.set("user", user);
    history.replaceState(null, "", url.pathname + url.search);
    for (const b of document.querySelectorAll("#user-list button")) b.classList.toggle("on", b.dataset.user === user);
    $("recs-for").textContent = `for ${user}`;
    $("user-current").textContent = user;
    connect();
    refresh();
  }

  // -- the live stream: re-read the profile and the list whenever the server says they moved -----------
  function connect() {
    if (state.source) state.source.close();
    const src = new EventSource(`/v1/users/${encodeURIComponent(state.user)}/live`);
    state.source = src;
    const live = $("live-state");
    src.addEventListener("open", () => {
      live.dataset.state = "on";
      live.textContent = "live: connected";
    });
    src.addEventListener("error", () => {
      live.dataset.state = "wait";
      live.textContent = "live: reconnecting…";
    });
    src.addEventListener("change", (e) => {
      const data = JSON.parse(e.data);
      if (data.user !== state.user) return;
      live.dataset.version = String(data.version);
      if (data.reason === "profile") refresh();
      else if (data.reason === "clock") refreshSoon();
    });
  }

  // a running clock pushes often: its refreshes at most once a second (a profile change refreshes at once)
  function refreshSoon() {
    if (state.soon) return;
    const wait = Math.max(0, 1000 - (Date.now() - state.refreshedAt));
    state.soon = setTimeout(() => {
      state.soon = null;
      refresh();
    }, wait);
  }

  async function refresh() {
    if (!state.user) return;
    if (state.refreshing) {
      state.again = true;
      return;
    }
    state.refreshing = true;
    state.refreshedAt = Date.now();
    const user = state.user;
    const u = encodeURIComponent(user);
    try {
      const [profile, recs] = await Promise.all([
        api(`/v1/users/${u}?events=15`),
        api(`/v1/recommendations/${u}?k=10&explain=true`),
      ]);
      if (user === state.user) {
        showProfile(profile);
        showRecs(recs);
        $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      }
    } catch (err) {
      say(`user ${user}: ${err.message}`, "error");
    } finally {
      state.refreshing = false;
      if (state.again) {
        state.again = false;
        refresh();
      }
    }
  }

  function showProfile(p) {
    const facts = [
      ["events", fmtNum(p.version)],
      ["first", fmtTime(p.first_ms)],
      ["newest", fmtTime(p.last_ms)],
      ["store", p.store],
      ...Object.entries(p.counts).map(([a, n]) => [a, fmtNum(n)]),
    ];
    $("user-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    const seen = state.events;
    const keys = new Set();
    const rows = p.recent.map((e) => {
      const key = `${e.item}|${e.time_ms}|${e.action}`;
      keys.add(key);
      const fresh = seen.size > 0 && !seen.has(key);
      return el("tr", { class: fresh ? "fresh" : "", "data-item": e.item },
        el("td", { class: "t", text: fmtTime(e.time_ms) }),
        el("td", {}, el("span", { class: `act act-${e.action}`, text: e.action })),
        el("td", { class: "title", text: e.title, title: `${e.title} (${e.item})` }),
        el("td", { class: "g", text: String(e.group) }));
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no events yet" })));
    $("events").replaceChildren(...rows);
    state.events = keys;
    drawInterest(p.interest, p.as_of_ms);
  }

  function showRecs(r) {
    const versions = Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(" · ") || "—";
    const flags = [r.cold_start && "cold start", r.cached && "cached", r.degraded && `degraded: ${r.degraded_reasons.join(", ")}`]
      .filter(Boolean).join(" · ");
    const meta = [
      el("span", { class: "tag", text: `arm ${r.arm}` }), el("span", { text: versions }),
      el("span", { class: "muted", text: `as of ${fmtTime(r.as_of_ms)}` }),
    ];
    if (flags) meta.push(el("span", { class: r.degraded ? "warn" : "muted", text: flags }));
    $("recs-meta").replaceChildren(...meta);
    const seen = state.recs;
    const items = r.items.map((it) => {
      const fresh = seen.size > 0 && !seen.has(it.item);
      const reasons = it.explanation ? it.explanation.reasons : [];
      return el("li", { class: fresh ? "fresh" : "", "data-item": it.item },
        el("span", { class: "rank", text: String(it.rank) }),
        el("div", { class: "body" },
          el("div", { class: "title", text: it.title, title: `${it.title} (${it.item})` }),
          el("div", { class: "why", text: reasons.join(" · ") || "—" })),
        el("span", { class: "score", text: it.score.toFixed(3) }));
    });
    $("recs").replaceChildren(...items);
    state.recs = new Set(r.items.map((it) => it.item));
  }

  // -- the interest chart (SVG, one bar per item group) ----------------------------------------------
  function drawInterest(bars, asOf) {
    const svg = $("interest");
    const W = 640, H = 250, top = 12, bottom = 26, left = 34, right = 6;
    const n = bars.length || 1;
    const max = Math.max(...bars.map((b) => b.weight), 0);
    const scale = max > 0 ? max : 1;
    const bw = (W - left - right) / n;
    const ranked = [...bars].sort((a, b) => b.weight - a.weight).filter((b) => b.weight > 0).slice(0, 6);
    const topSet = new Set(ranked.map((b) => b.group));
    const nodes = [];
    for (const f of [0, 0.5, 1]) {
      const y = top + (H - top - bottom) * (1 - f);
      nodes.push(svgEl("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      nodes.push(svgEl("text", { x: left - 4, y: y + 3, class: "axis", "text-anchor": "end" }, fmtPct(f * scale)));
    }
    bars.forEach((b, i) => {
      const h = ((H - top - bottom) * b.weight) / scale;
      const rect = svgEl("rect", {
        x: (left + i * bw + bw * 0.12).toFixed(2), width: Math.max(bw * 0.76, 1).toFixed(2),
        y: (H - bottom - h).toFixed(2), height: Math.max(h, 0).toFixed(2),
        class: topSet.has(b.group) ? "bar top" : "bar", "data-group": b.group, "data-weight": b.weight,
      });
      rect.append(svgEl("title", {}, `group ${b.group}: ${b.label} — ${fmtPct(b.weight)}`));
      nodes.push(rect);
      if (n <= 16 || i % Math.ceil(n / 16) === 0) {
        nodes.push(svgEl("text", { x: left + i * bw + bw / 2, y: H - bottom + 14, class: "axis", "text-anchor": "middle" }, String(b.group)));
      }
    });
    nodes.push(svgEl("text", { x: W - right, y: H - 2, class: "axis", "text-anchor": "end" }, `item group · as of ${fmtDate(asOf)}`));
    svg.replaceChildren(...nodes);
    $("top-groups").replaceChildren(
      ...(ranked.length
        ? ranked.map((b) => el("li", {}, el("span", { class: "g", text: `#${b.group}` }),
            el("span", { class: "label", text: b.label, title: b.label }), el("span", { class: "w", text: fmtPct(b.weight) })))
        : [el("li", { class: "muted", text: "no interest within the horizon at this time" })]),
    );
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    return node;
  }

  // -- the system panel ------------------------------------------------------------------------------
  async function pollSystem() {
    try {
      const s = await api("/v1/system");
      setTimeline(s.timeline);
      showSystem(s);
    } catch (err) {
      $("system").replaceChildren(el("dt", { text: "service" }), el("dd", { class: "warn", text: err.message }));
    }
  }

  function showSystem(s) {
    const f = s.freshness, t = s.traffic;
    const rows = [
      ["store", f.store, f.store === "ready" ? "ok" : "warn"],
      ["applied events", fmtNum(f.applied)],
      ["applied / s", f.applied_per_s == null ? "—" : fmtNum(f.applied_per_s, 1)],
      ["newest event applied", fmtTime(f.newest_event_ms)],
      ["behind replay clock", fmtAgo(f.behind_clock_s)],
      ["last batch applied", f.applied_ago_s == null ? "—" : `${fmtAgo(f.applied_ago_s)} ago`],
      ["produced → visible", f.freshness_p50_ms == null ? "—" : `p50 ${fmtNum(f.freshness_p50_ms)} ms · p99 ${fmtNum(f.freshness_p99_ms)} ms`],
      ["stream job", f.job == null ? "—" : `${f.job}${f.lag_events == null ? "" : ` · lag ${fmtNum(f.lag_events)}`}`],
      ["QPS", t.qps == null ? "—" : fmtNum(t.qps, 1)],
      ["latency", t.p99_ms == null ? "—" : `p50 ${fmtNum(t.p50_ms, 1)} ms · p99 ${fmtNum(t.p99_ms, 1)} ms`],
      ["window", t.window_s == null ? "since start" : `${fmtNum(t.window_s, 0)} s · ${fmtNum(t.requests)} requests`],
    ];
    $("system").replaceChildren(
      ...rows.flatMap(([k, v, cls]) => [el("dt", { text: k }), el("dd", { class: cls || "", text: v })]),
    );
    const arms = Object.entries(s.arms).sort((a, b) => (b[1].requests || 0) - (a[1].requests || 0));
    $("arms").replaceChildren(
      ...arms.map(([name, a]) => el("tr", {},
        el("td", { class: "arm", text: name }),
        el("td", {}, shareBar(a.share)),
        el("td", { text: a.p99_ms == null ? "—" : `${fmtNum(a.p99_ms, 1)} ms` }),
        el("td", { class: "versions", text: Object.entries(a.versions).map(([k, v]) => `${k} ${v}`).join(", ") || "—" }))),
    );
    if (!arms.length) $("arms").append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no arm yet" })));
  }

  function shareBar(share) {
    const wrap = el("span", { class: "share" });
    const fill = el("span", { class: "fill" });
    fill.style.width = `${Math.round(100 * (share || 0))}%`;
    wrap.append(fill, el("span", { class: "pct", text: fmtPct(share) }));
    return wrap;
  }

  // -- start -----------------------------------------------------------------------------------------
  async function start() {
    readToken();
    wireReplay();
    $("user-search").addEventListener("input", (e) => {
      clearTimeout(state.searchTimer);
      state.searchTimer = setTimeout(() => searchUsers(e.target.value.trim()), 200);
    });
    await Promise.all([pollSystem(), pollReplay()]);
    setInterval(pollReplay, REPLAY_POLL_MS);
    setInterval(pollSystem, SYSTEM_POLL_MS);
    const users = await searchUsers("");
    const wanted = new URL(location.href).searchParams.get("user");
    const busiest = users.reduce((a, b) => (b.events > (a ? a.events : -1) ? b : a), null);
    select(wanted || (busiest && busiest.user));
  }

  document.addEventListener("DOMContentLoaded", start);
})();
