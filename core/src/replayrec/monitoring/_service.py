"""``replayrec monitor run``: the monitor as a service. Every ``check_every_s`` one check (drift, each arm's
health, the registry), retraining when a check calls for it; over HTTP on loopback:

* ``GET /metrics`` — the monitor's and the registry exporter's Prometheus metrics;
* ``GET /healthz`` — 200 once a check has run;
* ``GET /v1/report`` — the last check as JSON;
* ``POST /v1/alerts`` — an Alertmanager webhook (bearer token): firing alerts labelled ``retrain="true"``
  start retraining of their ``plugin`` label, with the alert's name and summary as the reason.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from replayrec.errors import ReplayrecError
from replayrec.monitoring._monitor import ModelMonitor, MonitorReport
from replayrec.monitoring._retrain import RetrainJob, RetrainTrigger

__all__ = ["MonitorService", "alert_reasons"]

log = logging.getLogger("replayrec.monitor")

_MAX_BODY = 1 << 20


def alert_reasons(payload: Any) -> dict[str, list[str]]:
    """Plugin → reasons, from an Alertmanager webhook payload (version 4): its firing alerts labelled
    ``retrain="true"``. :class:`ValueError` naming what is wrong with a payload of another shape."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload: expected an object with an 'alerts' list")
    out: dict[str, list[str]] = {}
    for n, alert in enumerate(payload["alerts"]):
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise ValueError(f"alerts[{n}]: expected an object with 'labels'")
        labels, notes = alert["labels"], alert.get("annotations") or {}
        if alert.get("status") != "firing" or labels.get("retrain") != "true":
            continue
        name = str(labels.get("alertname", "alert"))
        summary = str(notes.get("summary", "")) if isinstance(notes, dict) else ""
        out.setdefault(str(labels.get("plugin", "")), []).append(f"{name}: {summary}".rstrip(": "))
    return out


@dataclass
class MonitorService:
    """The monitor, its retraining trigger and (once :meth:`serve` is entered) its HTTP endpoint."""

    monitor: ModelMonitor
    trigger: RetrainTrigger
    token: str | None = None
    last: MonitorReport | None = None
    jobs: list[RetrainJob] = field(default_factory=list)
    #: consecutive checks with a verdict (retraining starts at ``sustain_checks``)
    streak: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def step(self) -> MonitorReport:
        """One check, then retraining when its verdict has held for ``sustain_checks`` checks (the cool-down
        decides whether it starts)."""
        with self._lock:
            report = self.monitor.check()
            self.last = report
            if self.trigger.current is not None:
                self.trigger.finish(self.trigger.current)
            self.streak = self.streak + 1 if report.trigger is not None else 0
            if report.trigger is not None and self.streak >= self.monitor.config.sustain_checks:
                reasons = [*report.reasons, f"sustained over {self.streak} checks"]
                self._retrain(reasons, report.trigger, None)
            return report

    def _retrain(self, reasons: list[str], trigger: str, plugin: str | None) -> RetrainJob | None:
        try:
            job = self.trigger.request(reasons, trigger, plugin)
        except ReplayrecError as exc:
            log.error("retraining could not start: %s", exc)
            return None
        if job is not None:
            self.jobs.append(job)
        return job

    def on_alerts(self, payload: Any) -> dict[str, Any]:
        reasons = alert_reasons(payload)
        started = {}
        with self._lock:
            for plugin, why in sorted(reasons.items()):
                job = self._retrain(why, "alertmanager", plugin or None)
                started[plugin or self.trigger.config.plugin] = job.to_dict() if job else None
        return {"retrain": started}

    def run(self, stop: threading.Event, checks: int | None = None) -> int:
        """Check every ``check_every_s`` until ``stop`` is set (or ``checks`` checks ran); how many ran."""
        n = 0
        every = self.monitor.config.check_every_s
        while not stop.is_set() and (checks is None or n < checks):
            t0 = time.monotonic()
            self.step()
            n += 1
            stop.wait(max(0.0, every - (time.monotonic() - t0)))
        return n

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 9467) -> Iterator[ThreadingHTTPServer]:
        """The HTTP endpoint in a background thread; shut down on exit."""
        server = ThreadingHTTPServer((host, port), _handler(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="monitor-http", daemon=True)
        thread.start()
        log.info("monitor on http://%s:%d (/metrics, /v1/report, POST /v1/alerts)", host, server.server_port)
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _handler(service: MonitorService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("monitor http: " + format, *args)

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: Any) -> None:
            self._send(status, (json.dumps(doc, default=str) + "\n").encode())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(service.monitor.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = service.last is not None
                self._json(200 if ok else 503, {"checked": ok})
            elif path == "/v1/report":
                self._json(200, service.last.to_dict() if service.last else {"detail": "no check yet"})
            else:
                self._json(404, {"detail": f"no such endpoint: {path}"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/v1/alerts":
                self._json(404, {"detail": f"no such endpoint: {self.path}"})
                return
            if service.token is None:
                self._json(403, {"detail": "the alert webhook is off: start the monitor with an admin token"})
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {service.token}".encode()):
                self._json(401, {"detail": "a valid bearer token is required"})
                return
            try:
                size = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                size = -1
            if not 0 < size <= _MAX_BODY:
                self._json(413 if size > _MAX_BODY else 411, {"detail": f"a body of 1 to {_MAX_BODY} bytes"})
                return
            try:
                doc = json.loads(self.rfile.read(size))
                self._json(202, service.on_alerts(doc))
            except ValueError as exc:
                self._json(422, {"detail": str(exc)})

    return Handler
