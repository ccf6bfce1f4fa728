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
