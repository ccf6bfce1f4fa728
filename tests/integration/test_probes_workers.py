"""Worker-pool probes under a real FastAPI app served by uvicorn on 127.0.0.1.

Sync endpoints run in anyio's default thread pool; with its limiter cut to 2 tokens and
5 concurrent requests parked in the endpoint, 2 are busy and 3 wait for a token.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import requests
import uvicorn
from fastapi import FastAPI

from chokepoint.instrument import signals
from chokepoint.instrument.probes.workers import AnyioThreadPoolProbe, AsgiInflightProbe, wrap_asgi_inflight
from tests.instrument.probes.points import Metrics

ANYIO = {signals.ATTR_WORKER_POOL_KIND: "anyio", signals.ATTR_POOL_NAME: "anyio-default"}
ASGI = {signals.ATTR_WORKER_POOL_KIND: "asgi", signals.ATTR_POOL_NAME: "shop"}
TOKENS, REQUESTS = 2, 5


def _make_app(release: threading.Event):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        anyio.to_thread.current_default_thread_limiter().total_tokens = TOKENS
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/report")
    def report():  # sync endpoint → anyio thread pool
        release.wait(10)
        return {"ok": True}

    return wrap_asgi_inflight(app, name="shop")


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_fastapi_sync_endpoint_saturates_anyio_threadpool():
    metrics = Metrics()
    probes = [AnyioThreadPoolProbe(metrics.meter), AsgiInflightProbe(metrics.meter)]
    release = threading.Event()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_make_app(release), log_level="warning", lifespan="on"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    try:
        assert _wait_until(lambda: server.started)
        with ThreadPoolExecutor(REQUESTS) as clients:
            futures = [clients.submit(requests.get, f"http://127.0.0.1:{port}/report", timeout=20) for _ in range(REQUESTS)]
            assert _wait_until(
                lambda: metrics.points(signals.WORKER_POOL_QUEUED, ANYIO) and metrics.value(signals.WORKER_POOL_QUEUED, ANYIO) == REQUESTS - TOKENS
            )
            got = metrics.collect()
            assert metrics.value(signals.WORKER_POOL_BUSY, ANYIO, got) == TOKENS
            assert metrics.value(signals.WORKER_POOL_MAX, ANYIO, got) == TOKENS
            assert metrics.value(signals.WORKER_POOL_BUSY, ASGI, got) == REQUESTS
            time.sleep(0.2)
            release.set()
            assert all(f.result().json() == {"ok": True} for f in futures)
        # the app coroutine returns just after the response is sent
        assert _wait_until(lambda: metrics.value(signals.WORKER_POOL_BUSY, ASGI) == 0)
        got = metrics.collect()
        assert metrics.value(signals.WORKER_POOL_BUSY, ANYIO, got) == 0
        assert metrics.value(signals.WORKER_POOL_QUEUED, ANYIO, got) == 0
        waits = metrics.point(signals.WORKER_POOL_QUEUE_WAIT_TIME, ANYIO, got)
        assert waits.count == REQUESTS
        assert waits.max >= 0.2  # the queued requests waited for a token until release
    finally:
        release.set()
        server.should_exit = True
        serving.join(10)
        for probe in probes:
            probe.uninstall()
        metrics.close()
