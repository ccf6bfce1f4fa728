"""A synthetic collector REST API: contract-shaped JSON for tests, benchmarks and demos.

Serves every ``/api/v1`` endpoint of ../shared/CONTRACT.md and the time-series
extensions of ``docs/API.md`` from deterministic synthetic data (a shop service with
``routes`` routes, a saturated DB pool, an open breaker, a lagging consumer group and
``window_s`` seconds of history in ``bucket_s`` buckets).  Nothing here is used by the
dashboards themselves; it stands in for a collector that is not running.

Usage::

    python -m chokepoint.dashboards.fake_api --port 8787 --routes 200
    chokepoint dashboard --api http://127.0.0.1:8787

    with FakeApiServer(SyntheticData(routes=200)) as api:   # tests / bench
        ApiClient(api.url).endpoints()

``SyntheticData(empty=True)`` answers with no data at all (a collector nobody feeds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from chokepoint.semconv.catalog import FINDINGS_BY_KIND, TIMESERIES_METRICS

from .serving import BackgroundServer

SERVICE = "shop"
DB_POOL = "sqlalchemy:postgresql"
WORKER_POOL = "anyio"


def _route_name(i: int) -> str:
    named = ["/checkout", "/cart", "/products/{id}", "/search", "/orders/{id}", "/login", "/health"]
    return named[i] if i < len(named) else f"/api/items{i}/{{id}}"


class SyntheticData:
    """Deterministic contract-shaped payloads; ``now`` is fixed at construction."""

    def __init__(
        self, routes: int = 12, window_s: float = 3600, bucket_s: float = 10, seed: int = 7, empty: bool = False, blind_spots: list[dict] | None = None
    ) -> None:
        self.empty = empty
        self.blind_spots = list(blind_spots or [])  # /health's blind_spots, as a collector lists them
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.now = math.floor(time.time() / bucket_s) * bucket_s
        rng = random.Random(seed)
        self.routes = [_route_name(i) for i in range(routes)]
        # per route: base p50 latency (ms) and rps; the first route is the slow one
        self._base = {r: (rng.uniform(2, 40) if i else 180.0, rng.uniform(0.5, 30) if i else 42.0) for i, r in enumerate(self.routes)}
        self._series_cache: dict[tuple, list] = {}

    # ------------------------------------------------------------ helpers
    def _times(self, window_s: float) -> list[float]:
        n = max(1, int(min(window_s, self.window_s) // self.bucket_s))
        return [self.now - (n - 1 - k) * self.bucket_s for k in range(n)]

    @staticmethod
    def _wave(ts: float, period_s: float = 600) -> float:
        return 1 + 0.3 * math.sin(2 * math.pi * ts / period_s)

    def _route_stats(self, route: str) -> dict:
        p50, rps = self._base[route]
        errors = 0.04 if route == self.routes[0] else 0.002
        return {
            "service": SERVICE,
            "route": route,
            "rps": round(rps, 2),
            "error_rate": errors,
            "p50_ms": round(p50, 2),
            "p90_ms": round(p50 * 2.1, 2),
            "p99_ms": round(p50 * 4.3, 2),
            "p999_ms": round(p50 * 7.9, 2),
            "count": int(rps * 60),
        }

    # ------------------------------------------------------------ CONTRACT.md endpoints
    def health(self) -> dict:
        return {"status": "ok", "services": 0 if self.empty else 1, "spans_total": 0 if self.empty else 123456, "blind_spots": self.blind_spots}

    def services(self) -> dict:
        if self.empty:
            return {"services": []}
        total = sum(rps for _, rps in self._base.values())
        return {"services": [{"name": SERVICE, "endpoints": len(self.routes), "rps": round(total, 2), "error_rate": 0.011}]}

    def endpoints(self, service: str | None = None) -> dict:
        if self.empty:
            return {"endpoints": []}
        return {"endpoints": [self._route_stats(r) for r in self.routes]}

    def dependencies(self) -> dict:
        if self.empty:
            return {"dependencies": []}
        return {
            "dependencies": [
                {"service": SERVICE, "kind": "db", "target": "postgresql:shop", "rps": 120.0, "error_rate": 0.0, "p50_ms": 3.1, "p99_ms": 4.2, "count": 7200},
                {
                    "service": SERVICE,
                    "kind": "http",
                    "target": "payments.internal",
                    "rps": 40.0,
                    "error_rate": 0.35,
                    "p50_ms": 220.0,
                    "p99_ms": 2900.0,
                    "count": 2400,
                },
                {"service": SERVICE, "kind": "kafka", "target": "orders", "rps": 40.0, "error_rate": 0.0, "p50_ms": 1.2, "p99_ms": 6.5, "count": 2400},
            ]
        }

    def pools(self) -> dict:
        if self.empty:
            return {"pools": []}
        return {
            "pools": [
                {"service": SERVICE, "kind": "db", "name": DB_POOL, "used": 10, "max": 10, "pending": 14, "wait_p99_ms": 410.0, "timeouts": 3},
                {"service": SERVICE, "kind": "worker", "name": WORKER_POOL, "used": 23, "max": 40, "pending": 0, "wait_p99_ms": 0.4, "timeouts": 0},
            ]
        }

    def breakers(self) -> dict:
        if self.empty:
            return {"breakers": []}
        return {
            "breakers": [
                {
                    "service": SERVICE,
                    "name": "payments",
                    "state": "open",
                    "transitions": 5,
                    "rejected": 812,
                    "calls": {"success": 1200, "failure": 650, "rejected": 812},
                    "error_rate": 0.35,
                },
                {
                    "service": SERVICE,
                    "name": "inventory",
                    "state": "closed",
                    "transitions": 0,
                    "rejected": 0,
                    "calls": {"success": 5000, "failure": 3, "rejected": 0},
                    "error_rate": 0.0006,
                },
            ]
        }

    def consumer_lag(self) -> dict:
        if self.empty:
            return {"consumer_lag": []}
        rows = []
        for partition, (lag, time_lag, status) in enumerate([(18250, 95.0, "STALL"), (1200, 8.0, "WARN"), (3, 0.1, "OK")]):
            end = 500000 + partition * 1000
            rows.append(
                {
                    "group": "order-workers",
                    "topic": "orders",
                    "partition": partition,
                    "lag": lag,
                    "time_lag_s": time_lag,
                    "status": status,
                    "committed_offset": end - lag,
                    "log_end_offset": end,
                }
            )
        return {"consumer_lag": rows}

    def bottlenecks(self) -> dict:
        if self.empty:
            return {"findings": []}
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now - 900))
        db = FINDINGS_BY_KIND["db_pool_saturation"]
        cb = FINDINGS_BY_KIND["circuit_open"]
        lag = FINDINGS_BY_KIND["consumer_lag"]
        return {
            "findings": [
                {
                    "kind": db.kind,
                    "service": SERVICE,
                    "target": DB_POOL,
                    "score": 0.87,
                    "severity": "critical",
                    "since": since,
                    "summary": "Requests wait 410 ms (p99) for a DB connection; pool 10/10 busy, DB queries themselves take 4 ms",
                    "evidence": {"pool_used": 10, "pool_max": 10, "wait_p99_ms": 410, "query_p99_ms": 4},
                    "recommendation": db.recommendation,
                },
                {
                    "kind": cb.kind,
                    "service": SERVICE,
                    "target": "payments",
                    "score": 0.64,
                    "severity": "warning",
                    "since": since,
                    "summary": "Breaker payments is open: 812 calls rejected, 35% errors",
                    "evidence": {"rejected": 812, "error_rate": 0.35},
                    "recommendation": cb.recommendation,
                },
                {
                    "kind": lag.kind,
                    "service": SERVICE,
                    "target": "order-workers/orders",
                    "score": 0.41,
                    "severity": "warning",
                    "since": since,
                    "summary": "Consumer group order-workers is 19453 messages (95 s) behind on orders",
                    "evidence": {"lag": 19453, "time_lag_s": 95},
                    "recommendation": lag.recommendation,
                },
            ]
        }

    def traces(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> dict:
        if self.empty:
            return {"traces": []}
        routes = [route] if route else self.routes[:3]
        out = []
        for k in range(min(limit, 6)):
            r = routes[k % len(routes)]
            if r not in self._base:
                continue
            p50, _ = self._base[r]
            total = round(p50 * (5 + k), 2)
            wait = round(total * 0.55, 2)
            spans = [
                {
                    "span_id": f"{k:02x}01",
                    "parent_span_id": "",
                    "name": f"GET {r}",
                    "kind": "SERVER",
                    "start_offset_ms": 0.0,
                    "duration_ms": total,
                    "attributes": {"http.route": r},
                    "status": "ERROR" if k == 0 else "OK",
                },
                {
                    "span_id": f"{k:02x}02",
                    "parent_span_id": f"{k:02x}01",
                    "name": "pool wait",
                    "kind": "INTERNAL",
                    "start_offset_ms": 1.0,
                    "duration_ms": wait,
                    "attributes": {"pool": DB_POOL},
                    "status": "OK",
                },
                {
                    "span_id": f"{k:02x}03",
                    "parent_span_id": f"{k:02x}01",
                    "name": "SELECT orders",
                    "kind": "CLIENT",
                    "start_offset_ms": 1.0 + wait,
                    "duration_ms": 4.0,
                    "attributes": {"db.system": "postgresql"},
                    "status": "OK",
                },
                {
                    "span_id": f"{k:02x}04",
                    "parent_span_id": f"{k:02x}01",
                    "name": "POST payments.internal",
                    "kind": "CLIENT",
                    "start_offset_ms": 6.0 + wait,
                    "duration_ms": round(total - wait - 8, 2),
                    "attributes": {"server.address": "payments.internal"},
                    "status": "OK",
                },
            ]
            out.append(
                {
                    "trace_id": f"{k:032x}",
                    "service": SERVICE,
                    "route": r,
                    "duration_ms": total,
                    "error": k == 0,
                    "keep_reason": "error" if k == 0 else "slow",
                    "start": self.now - 30 * k,
                    "spans": spans,
                }
            )
        return {"traces": out}

    # ------------------------------------------------------------ docs/API.md extensions
    def timeseries(self, metric: str, service: str | None = None, target: str | None = None, window_s: float = 3600) -> dict:
        if metric not in TIMESERIES_METRICS:
            raise KeyError(metric)
        if self.empty:
            return {"metric": metric, "series": []}
        key = (metric, target, window_s)
        if key not in self._series_cache:
            self._series_cache[key] = self._make_series(metric, target, window_s)
        return {"metric": metric, "series": self._series_cache[key]}

    def _make_series(self, metric: str, target: str | None, window_s: float) -> list[dict]:
        times = self._times(window_s)

        def series(labels: dict, fn) -> dict:
            return {"labels": labels, "points": [[t, round(fn(t), 4)] for t in times]}

        quantile = {"latency_p50_ms": 1.0, "latency_p90_ms": 2.1, "latency_p99_ms": 4.3, "latency_p999_ms": 7.9}
        if metric in quantile or metric in ("rps", "error_rate"):
            routes = [target] if target else self.routes
            out = []
            for r in routes:
                if r not in self._base:
                    continue
                p50, rps = self._base[r]
                if metric in quantile:
                    f = quantile[metric]
                    out.append(series({"service": SERVICE, "route": r}, lambda t, p=p50, f=f: p * f * self._wave(t)))
                elif metric == "rps":
                    out.append(series({"service": SERVICE, "route": r}, lambda t, x=rps: x * self._wave(t, 900)))
                else:
                    out.append(series({"service": SERVICE, "route": r}, lambda t: 0.01 * self._wave(t, 300)))
            return out
        deps = {"postgresql:shop": (4.2, 120.0), "payments.internal": (2900.0, 40.0), "orders": (6.5, 40.0)}
        if metric in ("dependency_p99_ms", "dependency_rps"):
            idx = 0 if metric == "dependency_p99_ms" else 1
            return [series({"service": SERVICE, "target": d}, lambda t, v=v[idx]: v * self._wave(t)) for d, v in deps.items() if not target or d == target]
        pools = {DB_POOL: ("db", 10, 14, 410.0), WORKER_POOL: ("worker", 40, 0, 0.4)}
        if metric.startswith("pool_"):
            out = []
            for name, (kind, mx, pending, wait) in pools.items():
                if target and name != target:
                    continue
                labels = {"service": SERVICE, "kind": kind, "pool": name}
                fn = {
                    "pool_used": lambda t, mx=mx: min(mx, mx * 0.8 * self._wave(t)),
                    "pool_max": lambda t, mx=mx: mx,
                    "pool_pending": lambda t, p=pending: p * max(0.0, self._wave(t) - 0.8) * 3,
                    "pool_wait_p99_ms": lambda t, w=wait: w * self._wave(t),
                }.get(metric)
                if fn:
                    out.append(series(labels, fn))
            return out
        runtime = {
            "cpu_utilization": lambda t: 0.35 * self._wave(t),
            "cpu_run_queue_wait": lambda t: 0.05 * self._wave(t, 90),
            "rss_bytes": lambda t: 180e6 + (t - self.now + self.window_s) * 5e3,
            "gc_pause_p99_ms": lambda t: 3.0 * self._wave(t, 120),
            "event_loop_lag_p99_ms": lambda t: 1.5 * self._wave(t, 200),
            "threads": lambda t: 44,
        }
        if metric in runtime:
            return [series({"service": SERVICE}, runtime[metric])]
        if metric == "breaker_state":
            states = {"payments": lambda t: 2 if (t // 300) % 2 else (1 if (t // 150) % 2 else 0), "inventory": lambda t: 0}
            return [series({"service": SERVICE, "breaker": b}, fn) for b, fn in states.items() if not target or b == target]
        if metric in ("consumer_lag", "consumer_time_lag_s"):
            out = []
            for partition, growth in enumerate((5.0, 0.3, 0.0)):
                name = f"order-workers/orders/{partition}"
                if target and name != target:
                    continue
                scale = 1.0 if metric == "consumer_lag" else 0.005
                out.append(
                    series(
                        {"group": "order-workers", "topic": "orders", "partition": str(partition)},
                        lambda t, g=growth, s=scale: s * g * max(0.0, t - self.now + self.window_s),
                    )
                )
            return out
        raise KeyError(metric)

    def histogram(self, service: str, route: str) -> dict:
        if self.empty or route not in self._base:
            return {"buckets": []}
        p50, rps = self._base[route]
        buckets = []
        le = 0.5
        while le < 60000:
            # log-normal around p50
            z = (math.log(le) - math.log(p50)) / 0.8
            buckets.append({"le_ms": round(le, 3), "count": int(rps * 60 * math.exp(-z * z / 2) / 3)})
            le *= 1.5
        return {"buckets": buckets}

    def heatmap(self, service: str, route: str, window_s: float = 3600) -> dict:
        if self.empty or route not in self._base:
            return {"times": [], "le_ms": [], "counts": []}
        p50, rps = self._base[route]
        times = self._times(window_s)
        les = [round(0.5 * 1.5**k, 3) for k in range(28)]
        counts = []
        for t in times:
            center = math.log(p50 * self._wave(t))
            counts.append([int(rps * self.bucket_s * math.exp(-(((math.log(le) - center) / 0.7) ** 2) / 2) / 3) for le in les])
        return {"times": times, "le_ms": les, "counts": counts}

    def breakdown(self, service: str, route: str) -> dict:
        if self.empty or route not in self._base:
            return {"all": {}, "slow": {}, "requests": 0, "slow_requests": 0}
        p50, rps = self._base[route]
        all_ms = {"self": p50 * 0.2, "db": p50 * 0.1, "pool_wait": p50 * 0.3, "http": p50 * 0.35, "kafka": p50 * 0.03, "queue": p50 * 0.02}
        slow_ms = {"self": p50 * 0.3, "db": p50 * 0.15, "pool_wait": p50 * 3.1, "http": p50 * 0.9, "kafka": p50 * 0.04, "queue": p50 * 0.4}
        return {
            "all": {k: round(v, 2) for k, v in all_ms.items()},
            "slow": {k: round(v, 2) for k, v in slow_ms.items()},
            "requests": int(rps * 60),
            "slow_requests": max(1, int(rps * 0.6)),
        }

    # ------------------------------------------------------------ dispatch
    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict]:
        """(status, JSON body) for ``GET path?query`` — the collector's routing and errors."""
        window = float(query.get("window", 60) or 60)
        service, route, target = query.get("service"), query.get("route"), query.get("target")
        simple = {
            "/api/v1/health": self.health,
            "/api/v1/services": self.services,
            "/api/v1/dependencies": self.dependencies,
            "/api/v1/pools": self.pools,
            "/api/v1/breakers": self.breakers,
            "/api/v1/consumer-lag": self.consumer_lag,
            "/api/v1/bottlenecks": self.bottlenecks,
        }
        if path in simple:
            return 200, simple[path]()
        if path == "/api/v1/endpoints":
            return 200, self.endpoints(service)
        if path == "/api/v1/traces":
            return 200, self.traces(route, query.get("slow") == "1", int(query.get("limit", 50)))
        if path == "/api/v1/timeseries":
            try:
                return 200, self.timeseries(query.get("metric", ""), service, target, window)
            except KeyError:
                return 400, {"error": f"unknown metric {query.get('metric')!r}"}
        if path in ("/api/v1/histogram", "/api/v1/heatmap", "/api/v1/breakdown"):
            if not service or not route:
                return 400, {"error": "service and route are required"}
            if path.endswith("histogram"):
                return 200, self.histogram(service, route)
            if path.endswith("heatmap"):
                return 200, self.heatmap(service, route, window)
            return 200, self.breakdown(service, route)
        return 404, {"error": f"no such endpoint {path}"}


def send_json(handler: BaseHTTPRequestHandler, status: int, body) -> None:
    """Answer ``handler``'s request with ``body`` as JSON (with its length, so keep-alive works)."""
    raw = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class _Handler(BaseHTTPRequestHandler):
    data: SyntheticData  # set on the server-specific subclass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.requests_served += 1  # type: ignore[attr-defined]
        self.server.last_headers = dict(self.headers)  # type: ignore[attr-defined]
        send_json(self, *self.data.answer(url.path, query))

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


class FakeApiServer(BackgroundServer):
    """:class:`SyntheticData` served on 127.0.0.1 in a background thread (context manager)."""

    def __init__(self, data: SyntheticData | None = None, port: int = 0) -> None:
        self.data = data or SyntheticData()
        handler = type("Handler", (_Handler,), {"data": self.data})
        httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        httpd.daemon_threads = True
        httpd.requests_served = 0  # type: ignore[attr-defined]
        httpd.last_headers = {}  # type: ignore[attr-defined]
        super().__init__(httpd, "fake-collector-api")

    @property
    def requests_served(self) -> int:
        return self.httpd.requests_served  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve a synthetic chokepoint collector REST API")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--routes", type=int, default=12)
    parser.add_argument("--empty", action="store_true", help="serve no data at all")
    args = parser.parse_args(argv)
    server = FakeApiServer(SyntheticData(routes=args.routes, empty=args.empty), port=args.port)
    print(f"fake collector API on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
