"""pybreaker guarding a real HTTP dependency on 127.0.0.1 that starts failing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pybreaker
import pytest
import requests

from chokepoint.instrument import signals
from chokepoint.instrument.probes.breakers import PyBreakerProbe
from tests.instrument.probes.points import Metrics

NAME = {signals.ATTR_BREAKER_NAME: "inventory-api"}


class Dependency(BaseHTTPRequestHandler):
    status = 200
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        self.send_response(type(self).status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_breaker_opens_on_failing_dependency_rejects_and_records_transitions():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Dependency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/stock"
    metrics = Metrics()
    probe = PyBreakerProbe(metrics.meter)
    try:
        breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, name="inventory-api")

        @breaker
        def get_stock():
            response = requests.get(url, timeout=5)
            response.raise_for_status()
            return response.text

        assert get_stock() == "ok"
        Dependency.status = 503
        with pytest.raises(requests.HTTPError):
            get_stock()
        with pytest.raises(pybreaker.CircuitBreakerError):
            get_stock()  # second failure trips the breaker
        hits_when_opened = Dependency.hits
        for _ in range(3):
            with pytest.raises(pybreaker.CircuitBreakerError):
                get_stock()
        assert Dependency.hits == hits_when_opened  # rejected calls never reached the dependency

        got = metrics.collect()
        assert metrics.value(signals.BREAKER_STATE, NAME, got) == signals.BREAKER_STATES.index("open")
        results = {p.attributes[signals.ATTR_BREAKER_RESULT]: p.value for p in metrics.points(signals.BREAKER_CALLS, NAME, got)}
        assert results == {"success": 1, "failure": 2, "rejected": 3}
        moves = {
            (p.attributes[signals.ATTR_BREAKER_FROM], p.attributes[signals.ATTR_BREAKER_TO]): p.value
            for p in metrics.points(signals.BREAKER_TRANSITIONS, NAME, got)
        }
        assert moves == {("closed", "open"): 1}
    finally:
        Dependency.status = 200
        probe.uninstall()
        metrics.close()
        server.shutdown()
        server.server_close()
