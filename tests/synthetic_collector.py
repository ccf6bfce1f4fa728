"""A real collector (``CollectorService``: its ``Store`` and REST API) filled with synthetic data.

The store is written through its own write methods, so the dashboards, their tests and
``bench/dashboard.py`` read the actual ``/api/v1`` contract.  Usage::

    with SyntheticCollector(tmp_dir, routes=12, token="s3cret") as collector:
        ApiClient(collector.url, token="s3cret").endpoints()
        collector.p99_ms("/checkout")       # what the API must answer, from the data written

The collector's clock stands still at :attr:`SyntheticCollector.now` (mid-bucket, after the
``window_s`` seconds of history), so every windowed answer stays the same however long a test
runs.  The data: a shop service with ``routes`` routes (``/checkout`` the slowest, with
errors), three dependencies, a saturated DB pool whose requests wait :data:`POOL_WAIT_S`, a
``payments`` breaker open in alternate runs of ``BREAKER_PHASE`` buckets (``(k + 1) // 10`` even),
a consumer group whose partition 0 never commits, 1 falls behind and 2 keeps up, and
:data:`KEPT_TRACES` kept traces of ``/checkout``.  The methods below compute, from the same
definitions, the figures the API must answer.  ``empty=True`` starts it with no data at all.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from chokepoint.collector.sketch import Sketch

SERVICE = "shop"
DB_POOL = "sqlalchemy:postgresql"
WORKER_POOL = "anyio"
GROUP, TOPIC = "order-workers", "orders"
DEPENDENCIES = [("http", "payments.internal", 0.9, 7), ("db", "postgresql:shop", 0.004, 0), ("kafka", "orders", 0.0065, 0)]
REQUESTS_PER_BUCKET = 50  # per route
POOL_WAIT_S = 0.41  # every DB pool wait
BREAKER_PHASE = 10  # buckets per breaker phase (closed, then open)
REJECTED_PER_OPEN_BUCKET = 14
KEPT_TRACES = 6  # of /checkout, the newest an error
PRODUCED_PER_BUCKET = 1000  # messages per bucket on each partition of the topic
LAG_GROWTH = (1000, 300, 0)  # per partition: messages per bucket the group falls behind
LAG_START, LAG_FLOOR = 500_000, 3  # first log-end offset; lag of a partition that keeps up


def _route_name(i: int) -> str:
    named = ["/checkout", "/cart", "/products/{id}", "/search", "/orders/{id}", "/login", "/health"]
    return named[i] if i < len(named) else f"/api/items{i}/{{id}}"


def _wave(k: int) -> float:
    return 1 + 0.3 * math.sin(2 * math.pi * k / 20)


class SyntheticCollector:
    """A started collector on loopback ports whose store holds a shop service with ``routes`` routes."""

    def __init__(
        self,
        data_dir: Path,
        routes: int = 12,
        token: str | None = None,
        blind_spots: list[dict] | None = None,
        empty: bool = False,
        window_s: float = 600,
    ) -> None:
        config = CollectorConfig(
            otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=data_dir, sqlite_path=Path(data_dir) / "collector.sqlite", token=token
        )
        self.bucket_s = config.bucket_seconds
        self.end = (math.floor(time.time() / self.bucket_s) + 0.5) * self.bucket_s  # the newest bucket's time
        self.now = self.end  # the collector's clock
        self.service = CollectorService(config, clock=lambda: self.now)
        self.routes = [_route_name(i) for i in range(routes)]
        self.blind_spots = list(blind_spots or [])
        self.empty = empty  # a collector nobody feeds
        self.steps = 0 if empty else int(window_s // self.bucket_s)  # buckets of history, k = 0 .. steps-1

    @property
    def url(self) -> str:
        return self.service.api_url

    @property
    def store(self):
        return self.service.store

    # ------------------------------------------------------------ the data, bucket by bucket
    def bucket_time(self, k: int) -> float:
        return self.end - (self.steps - 1 - k) * self.bucket_s

    def durations_s(self, route: str, k: int) -> list[float]:
        """Request durations of ``route`` in bucket ``k``: a long tail, ``/checkout`` ten times slower than most."""
        i = self.routes.index(route)
        base_s = 0.180 if i == 0 else 0.002 * (1 + i % 40)
        return [base_s * _wave(k) * (1 + 3 * (j / REQUESTS_PER_BUCKET) ** 4) for j in range(REQUESTS_PER_BUCKET)]

    def breaker_open(self, k: int) -> bool:
        return ((k + 1) // BREAKER_PHASE) % 2 == 0

    def offsets(self, partition: int, k: int) -> tuple[int, int]:
        """(committed, log end) of ``partition`` in bucket ``k``; partition 0 falls behind as fast as messages arrive."""
        end = LAG_START + PRODUCED_PER_BUCKET * k
        return end - LAG_GROWTH[partition] * k - LAG_FLOOR, end

    # ------------------------------------------------------------ what the API must answer
    def in_window(self, window_s: float) -> list[int]:
        """Buckets a ``window_s`` query reads: those overlapping ``(now - window_s, now]``."""
        lo = self.now - window_s
        return [k for k in range(self.steps) if math.floor(self.bucket_time(k) / self.bucket_s) * self.bucket_s + self.bucket_s > lo]

    def p99_ms(self, route: str, window_s: float = 60) -> float:
        """The exact p99 of ``route``'s durations in the window (the sketch's rank: ``q * (n - 1)``), in ms."""
        values = sorted(d for k in self.in_window(window_s) for d in self.durations_s(route, k))
        return values[int(0.99 * (len(values) - 1))] * 1000

    def breaker_rejected(self, window_s: float = 60) -> int:
        return REJECTED_PER_OPEN_BUCKET * sum(self.breaker_open(k) for k in self.in_window(window_s))

    def lag(self, partition: int) -> int:
        committed, end = self.offsets(partition, self.steps - 1)
        return end - committed

    # ------------------------------------------------------------ writing it
    def fill(self) -> None:
        """``steps`` buckets of history, one write per bucket, on the collector's clock moved along."""
        store = self.store
        try:
            for k in range(self.steps):
                self.now = self.bucket_time(k)
                self._fill_bucket(store, k)
                store.flush_due()
        finally:
            self.now = self.end
        for spot in self.blind_spots:
            store.set_coverage(spot["service"], spot["library"], spot["what"], 0, version=spot.get("version", ""), try_=spot.get("try", ""))
        self._keep_traces(store)

    def _fill_bucket(self, store, k: int) -> None:
        wave = _wave(k)
        for i, route in enumerate(self.routes):
            store.add_requests(SERVICE, route, self.durations_s(route, k), errors=2 if i == 0 else 0)
        store.add_breakdown(SERVICE, self.routes[0], {"self": 0.02, "db": 0.01, "pool_wait": 0.05, "http": 0.06}, requests=REQUESTS_PER_BUCKET)
        store.add_breakdown(SERVICE, self.routes[0], {"self": 0.03, "db": 0.015, "pool_wait": 0.6, "http": 0.1}, slow=True, requests=5)
        for kind, target, base_s, errors in DEPENDENCIES:
            store.add_dependency_calls(SERVICE, kind, target, [base_s * wave] * 20, errors=errors)
        store.set_pool(SERVICE, "db", DB_POOL, used=10, max=10, pending=14)
        store.add_pool_waits(SERVICE, "db", DB_POOL, [POOL_WAIT_S] * 20)
        store.set_pool(SERVICE, "worker", WORKER_POOL, used=23, max=40, pending=0)
        store.set_breaker_state(SERVICE, "payments", "open" if self.breaker_open(k) else "closed")
        store.add_breaker_calls(SERVICE, "payments", "failure", 7)
        store.add_breaker_calls(SERVICE, "payments", "success", 13)
        if self.breaker_open(k):
            store.add_breaker_calls(SERVICE, "payments", "rejected", REJECTED_PER_OPEN_BUCKET)
        store.set_breaker_state(SERVICE, "inventory", "closed")
        store.add_breaker_calls(SERVICE, "inventory", "success", 50)
        store.set_runtime(SERVICE, cpu=0.35 * wave, rss=180e6, threads=44, run_queue_wait=0.05 * wave)
        for which, pause_s in (("gc_pause", 0.003), ("loop_lag", 0.0015)):
            sketch = Sketch(store.config.relative_accuracy)
            sketch.add_many([pause_s * wave] * 10)
            store.merge_runtime_sketch(SERVICE, which, sketch)
        for partition in range(len(LAG_GROWTH)):
            store.record_consumer_offsets(GROUP, TOPIC, partition, *self.offsets(partition, k), self.now, service=SERVICE)

    def _keep_traces(self, store) -> None:
        for k in range(KEPT_TRACES):
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
            error = k == KEPT_TRACES - 1
            for span in spans:
                span.update(attributes={}, status="ERROR" if error and not span["parent_span_id"] else "OK")
            store.keep_trace(
                {
                    "trace_id": f"{k:032x}",
                    "service": SERVICE,
                    "route": route,
                    "duration_ms": total,
                    "error": error,
                    "keep_reason": "error" if error else "slow",
                    "start": self.now - 30 * (KEPT_TRACES - 1 - k),
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
