"""A JSON HTTP endpoint on 127.0.0.1 for request-level tests of API clients (Blazar, Argo): the test supplies
the answers, the endpoint records every request; it stops when the ``with`` block ends."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "JsonEndpoint", "json_endpoint"]

# (method, path, headers with lower-case names, JSON body or None) -> (status, JSON body or None, headers)
Answer = Callable[[str, str, dict[str, str], Any], tuple[int, Any, dict[str, str]]]


@dataclass
class JsonEndpoint:
    """The running endpoint: its base URL and what it received (method, path, headers, body), in order."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def json_endpoint(answer: Answer) -> Iterator[JsonEndpoint]:
    """Serve ``answer`` on a free port of 127.0.0.1 until the block ends."""
    endpoint = JsonEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            endpoint.requests.append(
                {"method": self.command, "path": self.path, "headers": headers, "body": body}
            )
            status, payload, extra = answer(self.command, self.path, headers, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server's method names)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
