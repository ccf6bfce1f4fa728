"""End to end: an exhausted asyncpg pool with fast queries, and an httpx client pool of one.

A FastAPI app under ``chokepoint-instrument`` exports to a real collector.  ``/orders``
holds one of two asyncpg connections for 0.1 s around a 1 ms query; ``/quote`` makes an
outbound call through an ``httpx.AsyncClient`` limited to one connection to a dependency
answering in 0.1 s.  Eight clients at once: requests wait for a connection.  The
collector must list the asyncpg pool (kind ``db``) and the httpx pool (kind ``http``) with
their waits, the waits must be the routes' ``pool_wait`` in the breakdown instead of
"self" time, and the loop's busy share must arrive as a runtime field.  Ground truth: the
clients' own latencies (a request waits for the connection of those before it).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from instrumented_app import InstrumentedApp

from tests.integration.collector_probe import wait_for

APP = """
import asyncio, os, sys
import asyncpg, httpx, uvicorn
from fastapi import FastAPI

app = FastAPI()
state = {}

@app.on_event("startup")
async def start():
    state["pool"] = await asyncpg.create_pool(os.environ["APP_DSN"], min_size=2, max_size=2)
    state["client"] = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30)

@app.get("/health")
async def health():
    return {"ok": True}

@app.get("/orders")
async def orders():
    async with state["pool"].acquire() as conn:
        n = await conn.fetchval("select 1")
        await asyncio.sleep(0.1)  # holds the connection
    return {"n": n}

@app.get("/quote")
async def quote():
    r = await state["client"].get(os.environ["APP_DEPENDENCY"])
    return {"status": r.status_code}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.1)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_exhausted_asyncpg_and_httpx_pools_reach_the_store_as_pool_wait(collector, postgres, tmp_path):
    dependency = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=dependency.serve_forever, daemon=True).start()
    service = "pools-case3"
    env = {
        "APP_DSN": postgres.dsn,
        "APP_DEPENDENCY": f"http://127.0.0.1:{dependency.server_address[1]}/",
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    latencies: dict[str, list[float]] = {"/orders": [], "/quote": []}

    def call(app, path):
        t0 = time.perf_counter()
        assert requests.get(app.url(path), timeout=30).status_code == 200
        latencies[path].append(time.perf_counter() - t0)

    try:
        with InstrumentedApp(APP, tmp_path, env) as app, ThreadPoolExecutor(8) as clients:
            for _ in range(3):
                list(clients.map(lambda p: call(app, p), ["/orders"] * 8 + ["/quote"] * 8))
            pools = wait_for(
                lambda: (
                    (rows := {p["kind"]: p for p in collector.store.pools() if p["service"] == service and p["kind"] in ("db", "http")})
                    and len(rows) == 2
                    and all(r["wait_count"] >= 24 for r in rows.values())
                    and rows
                ),
                timeout_s=30,
            )
            orders = wait_for(
                lambda: collector.store.breakdown(service, "/orders").get("all", {}).get("pool_wait") and collector.store.breakdown(service, "/orders")
            )
            quote = wait_for(
                lambda: collector.store.breakdown(service, "/quote").get("all", {}).get("pool_wait") and collector.store.breakdown(service, "/quote")
            )
            runtime = wait_for(lambda: (r := collector.store.window(30).runtime.get(service)) and r.loop_busy is not None and r)
    finally:
        dependency.shutdown()
        dependency.server_close()

    assert pools, collector.store.pools()
    print(f"pools: {pools}\nbreakdown /orders {orders}\n/quote {quote}\nloop busy {runtime.loop_busy}, stall max {runtime.loop_stall_max}")
    db, http = pools["db"], pools["http"]
    assert db["name"].startswith("asyncpg://127.0.0.1:") and db["max"] == 2
    assert http["name"] == f"httpx:http://127.0.0.1:{dependency.server_address[1]}" and http["max"] == 1
    # the clients' own median latency is several hold times: most of it is the wait
    for path, hold in (("/orders", 0.1), ("/quote", 0.1)):
        mine = sorted(latencies[path])
        assert mine[len(mine) // 2] > 2 * hold, (path, mine)
    assert db["wait_p99_ms"] > 200 and http["wait_p99_ms"] > 200
    # the wait is the routes' pool_wait (ms per request), no longer the app's own "self" time
    assert orders["all"]["pool_wait"] > 50 and quote["all"]["pool_wait"] > 50, (orders, quote)
    assert quote["all"].get("self", 0.0) < 0.5 * quote["all"]["pool_wait"], quote
    # the dependency's own time (~100 ms), the pool wait taken out of its client span: less than the wait
    assert 90 <= quote["all"]["http:127.0.0.1"] < quote["all"]["pool_wait"], quote
    assert 0.0 <= runtime.loop_busy <= 1.0
