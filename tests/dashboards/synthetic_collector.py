"""A real collector (``CollectorService``: its ``Store`` and REST API) filled with synthetic data.

The store is written through its own write methods, so the dashboards read the actual
``/api/v1`` contract.  Usage::

    with SyntheticCollector(tmp_dir, routes=12, token="s3cret") as collector:
        ApiClient(collector.url, token="s3cret").endpoints()

``empty=True`` starts it with no data at all.  :class:`JsonServer` answers fixed bodies
per path (a collector of another shape, a Grafana API) for what a real collector cannot do.
"""

from __future__ import annotations

import json
import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from chokepoint.collector.sketch import Sketch
from chokepoint.dashboards.serving import BackgroundServer

SERVICE = "shop"
DB_POOL = "sqlalchemy:postgresql"
WORKER_POOL = "anyio"
GROUP, TOPIC = "order-workers", "orders"
DEPENDENCIES = [("http", "payments.internal", 0.9, 7), ("db", "postgresql:shop", 0.004, 0), ("kafka", "orders", 0.0065, 0)]


def _route_name(i: int) -> str:
    named = ["/checkout", "/cart", "/products/{id}", "/search", "/orders/{id}", "/login", "/health"]
    return named[i] if i < len(named) else f"/api/items{i}/{{id}}"


class SyntheticCollector:
    """A started collector on loopback ports whose store holds a shop service with ``routes`` routes."""

    def __init__(self, data_dir: Path, routes: int = 12, token: str | None = None, blind_spots: list[dict] | None = None, empty: bool = False) -> None:
        config = CollectorConfig(
            otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=data_dir, sqlite_path=Path(data_dir) / "collector.sqlite", token=token
        )
        self.service = CollectorService(config)
        self.routes = [_route_name(i) for i in range(routes)]
        self.blind_spots = list(blind_spots or [])
        self.empty = empty  # a collector nobody feeds

    @property
    def url(self) -> str:
        return self.service.api_url

    @property
    def store(self):
        return self.service.store

    def fill(self, window_s: float = 600) -> None:
        """``window_s`` seconds of history, one write per bucket, on the store's clock moved back then restored."""
        store = self.store
        real_clock = store.clock
        bucket_s = self.service.config.bucket_seconds
        now = real_clock()
        steps = int(window_s // bucket_s)
        try:
            for k in range(steps):
                t = now - (steps - 1 - k) * bucket_s
                store.clock = lambda t=t: t
                self._fill_bucket(store, k, t)
                store.flush_due()
        finally:
            store.clock = real_clock
        for spot in self.blind_spots:
            store.set_coverage(spot["service"], spot["library"], spot["what"], 0, version=spot.get("version", ""), try_=spot.get("try", ""))
        self._keep_traces(store, now)

    def _fill_bucket(self, store, k: int, t: float) -> None:
        wave = 1 + 0.3 * math.sin(2 * math.pi * k / 20)
        for i, route in enumerate(self.routes):
            base_s = 0.180 if i == 0 else 0.002 * (i + 1)
            durations = [base_s * wave * (1 + 3 * (j / 50) ** 4) for j in range(50)]
            store.add_requests(SERVICE, route, durations, errors=2 if i == 0 else 0)
        store.add_breakdown(SERVICE, self.routes[0], {"self": 0.02, "db": 0.01, "pool_wait": 0.05, "http": 0.06}, requests=50)
        store.add_breakdown(SERVICE, self.routes[0], {"self": 0.03, "db": 0.015, "pool_wait": 0.6, "http": 0.1}, slow=True, requests=5)
        for kind, target, base_s, errors in DEPENDENCIES:
            store.add_dependency_calls(SERVICE, kind, target, [base_s * wave] * 20, errors=errors)
        store.set_pool(SERVICE, "db", DB_POOL, used=10, max=10, pending=14)
        store.add_pool_waits(SERVICE, "db", DB_POOL, [0.41] * 20)
        store.set_pool(SERVICE, "worker", WORKER_POOL, used=23, max=40, pending=0)
        store.set_breaker_state(SERVICE, "payments", "closed" if ((k + 1) // 10) % 2 else "open")
        store.add_breaker_calls(SERVICE, "payments", "failure", 7)
        store.add_breaker_calls(SERVICE, "payments", "success", 13)
        if not ((k + 1) // 10) % 2:
            store.add_breaker_calls(SERVICE, "payments", "rejected", 14)
        store.set_breaker_state(SERVICE, "inventory", "closed")
        store.add_breaker_calls(SERVICE, "inventory", "success", 50)
        store.set_runtime(SERVICE, cpu=0.35 * wave, rss=180e6, threads=44, run_queue_wait=0.05 * wave)
        for which, pause_s in (("gc_pause", 0.003), ("loop_lag", 0.0015)):
            sketch = Sketch(store.config.relative_accuracy)
            sketch.add_many([pause_s * wave] * 10)
            store.merge_runtime_sketch(SERVICE, which, sketch)
        for partition, growth in enumerate((1000, 300, 0)):
            end = 500_000 + 1000 * k
            store.record_consumer_offsets(GROUP, TOPIC, partition, end - growth * k - 3, end, t, service=SERVICE)

    def _keep_traces(self, store, now: float) -> None:
        for k in range(6):
            route = self.routes[0]
            total, wait = 900.0 + 10 * k, 500.0
            spans = [
                {"span_id": f"{k:02x}01", "parent_span_id": "", "name": f"GET {route}", "kind": "SERVER", "start_offset_ms": 0.0, "duration_ms": total},
                {"span_id": f"{k:02x}02", "parent_span_id": f"{k:02x}01", "name": "pool wait", "kind": "INTERNAL", "start_offset_ms": 1.0, "duration_ms": wait},
                {
                    "span_id": f"{k:02x}03",
                    "parent_span_id": f"{k:02x}01",
                    "name": "SELECT orders",
                    "kind": "CLIENT",
                    "start_offset_ms": 1 + wait,
                    "duration_ms": 4.0,
                },
                {
                    "span_id": f"{k:02x}04",
                    "parent_span_id": f"{k:02x}01",
                    "name": "POST payments.internal",
                    "kind": "CLIENT",
                    "start_offset_ms": 6 + wait,
                    "duration_ms": 300.0,
                },
            ]
            for span in spans:
                span.update(attributes={}, status="ERROR" if k == 5 and not span["parent_span_id"] else "OK")
            store.keep_trace(
                {
                    "trace_id": f"{k:032x}",
                    "service": SERVICE,
                    "route": route,
                    "duration_ms": total,
                    "error": k == 5,
                    "keep_reason": "error" if k == 5 else "slow",
                    "start": now - 30 * (5 - k),
                    "spans": spans,
                }
            )

    def __enter__(self) -> SyntheticCollector:
        self.service.start()
        if not self.empty:
            self.fill()
        return self

    def __exit__(self, *exc) -> None:
        self.service.shutdown()


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
