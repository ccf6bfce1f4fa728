"""Runtime probe in a real uvicorn server: an async endpoint that blocks shows as event-loop lag."""

from __future__ import annotations

import socket
import threading
import time

import requests
import uvicorn
from fastapi import FastAPI

from chokepoint.instrument import signals
from chokepoint.instrument.probes.runtime import RuntimeProbe
from tests.instrument.probes.points import Metrics


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/fast")
    async def fast():
        return {"ok": True}

    @app.get("/block")
    async def block():
        time.sleep(0.4)  # a blocking call inside async code: the whole loop stops
        return {"ok": True}

    return app


def test_blocking_async_endpoint_shows_as_event_loop_lag():
    metrics = Metrics()
    probe = RuntimeProbe(metrics.meter, loop_interval_s=0.02)  # before the server's loop starts, as the agent does
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(_app(), log_level="warning"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        for _ in range(5):
            assert requests.get(f"{base}/fast", timeout=5).json() == {"ok": True}
        time.sleep(0.2)
        calm = metrics.point(signals.RUNTIME_EVENT_LOOP_LAG)
        assert calm.count >= 5 and calm.max < 0.3
        assert requests.get(f"{base}/block", timeout=5).json() == {"ok": True}
        time.sleep(0.1)
        blocked = metrics.point(signals.RUNTIME_EVENT_LOOP_LAG)
        assert blocked.max >= 0.3
        assert blocked.count > calm.count
    finally:
        server.should_exit = True
        serving.join(10)
        probe.uninstall()
        metrics.close()


def test_concurrent_clients_of_a_blocking_async_route_show_a_busy_loop_and_its_stall():
    """``async def`` + a blocking call under concurrent clients.  The clients wait many
    times the handler's own time; the loop is busy nearly all the time, its longest stall is
    at least one handler's blocking call — several, when their requests were ready in the same
    loop iteration (ground truth: the clients' own latencies, the handler's own 0.1 s)."""
    metrics = Metrics()
    probe = RuntimeProbe(metrics.meter, loop_interval_s=0.05)
    app = FastAPI()

    @app.get("/report")
    async def report():
        time.sleep(0.1)
        return {"ok": True}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        requests.get(f"{base}/report", timeout=5)
        metrics.collect()  # the interval starts here
        latencies: list[float] = []

        def client():
            with requests.Session() as s:
                for _ in range(4):
                    t0 = time.perf_counter()
                    s.get(f"{base}/report", timeout=30)
                    latencies.append(time.perf_counter() - t0)

        clients = [threading.Thread(target=client) for _ in range(6)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        got = metrics.collect()
        busy = metrics.value(signals.RUNTIME_EVENT_LOOP_BUSY, None, got)
        stall = metrics.value(signals.RUNTIME_EVENT_LOOP_STALL_MAX, None, got)
    finally:
        server.should_exit = True
        serving.join(10)
        probe.uninstall()
        metrics.close()
    latencies.sort()
    assert latencies[len(latencies) // 2] > 3 * 0.1  # clients wait several handlers' time
    assert busy > 0.8, busy
    assert 0.1 <= stall <= latencies[-1], stall
