"""``JsonServer``: fixed JSON answers per path on loopback, for what a real collector cannot answer.

Usage::

    with JsonServer({"/api/v1/pools": {"pools": [None]}}) as server:   # a collector of another shape
        ApiClient(server.url).pools()

:func:`send_json` answers one request of any ``BaseHTTPRequestHandler`` (a Grafana API in a test).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from chokepoint.dashboards.serving import BackgroundServer


def send_json(handler: BaseHTTPRequestHandler, status: int, body) -> None:
    """Answer ``handler``'s request with ``body`` as JSON (with its length, so keep-alive works)."""
    raw = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class JsonServer(BackgroundServer):
    """``GET path`` answers ``answers[path]`` (200) or 404, on 127.0.0.1 in a background thread."""

    def __init__(self, answers: dict[str, object]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlparse(self.path).path
                send_json(self, 200, answers[path]) if path in answers else send_json(self, 404, {"error": f"no endpoint {path}"})

            def log_message(self, format: str, *args) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        super().__init__(httpd, "json-server")
