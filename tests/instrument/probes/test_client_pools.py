"""Client pool probes against real servers: redis-server, and a local HTTP server for urllib3/httpx.

More callers than connections.  Ground truth from outside the probe: the callers' own
timing of the checkout (redis), Redis's own ``CLIENT LIST``, the HTTP server's own count of
concurrent connections, and for HTTP the time from a call's start to the server's
receiving it (the wait for a connection plus sending the request).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis as redis_py
import redis.asyncio as aredis
import urllib3

from chokepoint.instrument import context, signals
from chokepoint.instrument.probes.client_pools import HttpxPoolProbe, RedisPoolProbe, Urllib3PoolProbe, exclude_own, own

POOL, KIND = signals.ATTR_DB_POOL_NAME, signals.ATTR_POOL_KIND
HOLD_S = 0.1


def _threads(n, target):
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def _until(metrics, ready, timeout_s: float = 30.0):
    """Collect until ``ready(collection)`` holds (the callers get going at the host's pace, and
    the servers hold them until the test lets go); the last collection."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = metrics.collect()
        if ready(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


# ---------------------------------------------------------------------- redis
def test_blocking_redis_pool_waits_waiters_hold_and_timeouts(metrics, installed, redis):
    installed.append(RedisPoolProbe(metrics.meter))
    pool = redis_py.BlockingConnectionPool.from_url(redis.url, max_connections=2, timeout=5)
    name = f"redis://127.0.0.1:{redis.port}/0"
    client, watcher = redis_py.Redis(connection_pool=pool), redis_py.Redis.from_url(redis.url)
    waits: list[float] = []
    lock = threading.Lock()
    gate = f"chokepoint:gate:{redis.port}"

    def work():
        t0 = time.perf_counter()
        conn = pool.get_connection()
        with lock:
            waits.append(time.perf_counter() - t0)
        try:
            conn.send_command("BLPOP", gate, 30)  # holds the connection on the server until the test pushes
            conn.read_response()
        finally:
            pool.release(conn)

    def state(got):
        return (
            metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got),
            metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got),
            sum(1 for c in watcher.client_list() if c.get("cmd") == "blpop"),
        )

    threads = _threads(6, work)
    got = _until(metrics, lambda got: state(got) == (4, 2, 2))
    pending, used, blocked = state(got)
    time.sleep(HOLD_S)  # every waiter waits at least this long
    watcher.rpush(gate, *["go"] * 6)
    for t in threads:
        t.join()
    client.ping()
    got = metrics.collect()
    assert (pending, used, blocked) == (4, 2, 2)  # two hold the pool's connections (Redis sees them), four wait
    assert metrics.point(signals.DB_POOL_CONNECTION_MAX, {POOL: name}, got).attributes[KIND] == "redis"
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    assert wait.count == 7  # six workers + the ping
    assert wait.sum == pytest.approx(sum(waits), abs=0.02)
    assert sum(waits) > 4 * HOLD_S
    # a blocking pool that gives up counts a timeout
    short = redis_py.BlockingConnectionPool.from_url(redis.url, max_connections=1, timeout=0.05)
    held = short.get_connection()
    with pytest.raises(redis_py.ConnectionError):
        short.get_connection()
    short.release(held)
    assert metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: f"{name}#3"}) == 1  # the third pool to this Redis (the watcher's is #2)
    pool.disconnect()
    short.disconnect()


def test_asyncio_redis_pool_wait_goes_to_the_request_breakdown(metrics, installed, redis):
    installed.append(RedisPoolProbe(metrics.meter))
    name = f"redis://127.0.0.1:{redis.port}/0"

    async def main():
        pool = aredis.BlockingConnectionPool.from_url(redis.url, max_connections=1, timeout=5)
        r = aredis.Redis(connection_pool=pool)

        async def request():
            token = context.start_request("/cart")
            t0 = time.perf_counter()
            await r.blpop(["chokepoint:nothing"], timeout=HOLD_S)
            took = time.perf_counter() - t0
            return took, context.end_request(token).component_seconds.get("pool_wait", 0.0)

        results = await asyncio.gather(*(request() for _ in range(3)))
        await pool.disconnect()
        return results

    results = asyncio.run(main())
    waited = sorted(w for _, w in results)
    assert waited[0] < 0.05 and waited[2] > 1.5 * HOLD_S  # the first got the connection, the last waited for two
    got = metrics.collect()
    assert metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name, KIND: "redis"}, got).count == 3
    assert metrics.point(signals.DB_POOL_USE_TIME, {POOL: name}, got).count == 3


# ---------------------------------------------------------------------- a local HTTP server
class _Server:
    """Sleeps HOLD_S per request (and holds it while ``gate`` is cleared); counts concurrent
    connections, notes when each ``X-Id`` arrived."""

    def __init__(self) -> None:
        server = self
        self.lock = threading.Lock()
        self.open = self.peak = 0
        self.arrived: dict[str, float] = {}
        self.gate = threading.Event()  # cleared: every GET is held after its HOLD_S until set
        self.gate.set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with server.lock:
                    server.open += 1
                    server.peak = max(server.peak, server.open)

            def finish(self):
                with server.lock:
                    server.open -= 1
                super().finish()

            def do_POST(self):  # an OTLP export
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                server.arrived[self.headers.get("X-Id", "")] = time.perf_counter()
                time.sleep(HOLD_S)
                server.gate.wait(30)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_urllib3_blocking_pool_wait_is_client_time_minus_server_time(metrics, installed, server):
    installed.append(Urllib3PoolProbe(metrics.meter))
    pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=2, block=True)
    name = f"http://127.0.0.1:{server.port}"
    started: dict[str, float] = {}
    ids = itertools.count()

    def work():
        key = str(next(ids))
        started[key] = time.perf_counter()
        assert pool.request("GET", "/", headers={"X-Id": key}).status == 200

    def state(got):
        return (
            metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got),
            metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got),
        )

    server.gate.clear()
    threads = _threads(6, work)
    got = _until(metrics, lambda got: state(got) == (4, 2))
    pending, used = state(got)
    server.gate.set()
    for t in threads:
        t.join()
    got = metrics.collect()
    assert (pending, used, server.peak) == (4, 2, 2)
    assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: name, KIND: "http"}, got) == 2
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    outside = sum(server.arrived[k] - t for k, t in started.items())  # the wait, plus sending the request
    assert wait.count == 6
    assert 0 < outside - wait.sum < 0.01 * 6 + 0.05 * outside, (wait.sum, outside)
    assert wait.sum > 4 * HOLD_S
    tight = urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=1, block=True)
    held = tight._get_conn()
    with pytest.raises(urllib3.exceptions.EmptyPoolError):
        tight._get_conn(timeout=0.05)
    tight._put_conn(held)
    assert metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: f"{name}#2"}) == 1  # a second live pool to the same origin
    pool.close()


def test_httpx_limits_wait_and_pool_timeout(metrics, installed, server):
    installed.append(HttpxPoolProbe(metrics.meter))
    name = f"httpx:http://127.0.0.1:{server.port}"
    url = f"http://127.0.0.1:{server.port}/"
    started: dict[str, float] = {}
    ids = itertools.count()
    with httpx.Client(limits=httpx.Limits(max_connections=2)) as client:

        def work():
            key = str(next(ids))
            started[key] = time.perf_counter()
            assert client.get(url, headers={"X-Id": key}).status_code == 200

        work()  # the pool is named after its first request's origin
        started.clear()
        server.gate.clear()
        threads = _threads(6, work)
        got = _until(metrics, lambda got: metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got) == 4)
        pending = metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got)
        server.gate.set()
        for t in threads:
            t.join()
        got = metrics.collect()
    assert (pending, server.peak) == (4, 2)
    assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: name, KIND: "http"}, got) == 2
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    outside = sum(server.arrived[k] - t for k, t in started.items())
    assert wait.count == 7
    assert 0 < outside - wait.sum < 0.01 * 6 + 0.05 * outside, (wait.sum, outside)

    async def pool_timeout():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=httpx.Timeout(5.0, pool=0.02)) as client:
            results = await asyncio.gather(client.get(url), client.get(url), return_exceptions=True)
        return sorted(type(r).__name__ for r in results)

    assert asyncio.run(pool_timeout()) == ["PoolTimeout", "Response"]
    got = metrics.collect()
    assert sum(p.value for p in metrics.points(signals.DB_POOL_TIMEOUTS, {KIND: "http"}, got)) == 1


def test_the_agents_own_export_sessions_are_no_app_pool(metrics, installed, server):
    """The exporters' pools are skipped by identity: an app session to the same origin is still probed."""
    import requests
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from chokepoint.instrument.agent import Agent
    from chokepoint.instrument.config import AgentConfig

    installed.extend([Urllib3PoolProbe(metrics.meter), HttpxPoolProbe(metrics.meter)])
    origin = f"http://127.0.0.1:{server.port}"
    spans = OTLPSpanExporter(endpoint=f"{origin}/v1/traces")
    early = OTLPSpanExporter(endpoint=f"{origin}/v1/traces")
    span = TracerProvider().get_tracer("t").start_span("s")
    span.end()
    assert early.export([span]).name == "SUCCESS"  # its pool exists (and is probed) before it is marked
    assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: origin, signals.ATTR_DB_POOL_STATE: "idle"}) == 1
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{origin}/v1/metrics"), export_interval_millis=3_600_000)
    httpx_client = httpx.Client()
    assert exclude_own(reader, spans, early, httpx_client, object(), None) == 7  # 3 sessions x 2 adapters (http, https), 1 httpx pool
    for _ in range(3):
        assert spans.export([span]).name == "SUCCESS"
    app = requests.Session()
    app.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=1, pool_block=True))
    assert app.get(f"{origin}/", headers={"X-Id": "app"}).status_code == 200
    httpx_client.get(f"{origin}/")
    got = metrics.collect()
    names = {p.attributes[POOL] for p in metrics.points(signals.DB_POOL_WAIT_TIME, {KIND: "http"}, got)}
    assert names == {origin}, names  # the app's pool, under the origin's plain name; no exporter's, no httpx's
    assert metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: origin}, got).count == 2  # the early export before it was marked, the app's call
    counts = [p for p in metrics.points(signals.DB_POOL_CONNECTION_COUNT, {KIND: "http"}, got)]
    assert {p.attributes[POOL] for p in counts} == {origin} and sum(p.value for p in counts) == 1  # the early exporter's pool is gone
    agent = Agent(AgentConfig(endpoint=origin), metric_reader=reader)  # the agent marks its own OTLP exporters
    try:
        managers = [a.poolmanager for ex in (agent.processor.queue.exporter, reader._exporter) for a in ex._client._transport._session.adapters.values()]
        assert managers and all(own(m) for m in managers)
    finally:
        agent.shutdown()
    app.close()
    httpx_client.close()


def test_uninstall_restores_every_pool_class(metrics):
    originals = (redis_py.ConnectionPool.get_connection, aredis.BlockingConnectionPool.get_connection, urllib3.HTTPConnectionPool._get_conn)
    for cls in (RedisPoolProbe, Urllib3PoolProbe, HttpxPoolProbe):
        cls(metrics.meter).uninstall()
    assert (redis_py.ConnectionPool.get_connection, aredis.BlockingConnectionPool.get_connection, urllib3.HTTPConnectionPool._get_conn) == originals
