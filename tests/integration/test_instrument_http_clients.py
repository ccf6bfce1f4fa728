"""HTTP clients used directly under ``chokepoint-instrument``: urllib3 and aiohttp, against a
real local HTTP server.

One FastAPI app (uvicorn, zero code change) has a route per client; each test calls its
route and checks what reached the OTLP sink: the client span as a child of the request
(its URL without the query string), the trace context carried in the outbound
``traceparent`` header, ``http.client.request.duration`` with exactly ``server.address``,
``http.request.method``, ``http.response.status_code``, and the call's time under
``http:<host>`` in the request's breakdown.
"""

from __future__ import annotations

import pytest
import requests
from instrumented_app import Downstream, InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import os, sys
import aiohttp, urllib3, uvicorn
from fastapi import FastAPI

DOWN = os.environ["APP_DOWNSTREAM"]
pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=5))
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/urllib3/{n}")
def with_urllib3(n: int):
    response = pool.request("GET", f"{DOWN}/stock/{n}?token=secret-token")
    return {"status": response.status}

@app.get("/aiohttp/{n}")
async def with_aiohttp(n: int):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"{DOWN}/price/{n}?token=secret-token") as response:
            await response.read()
            return {"status": response.status}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

SERVER, CLIENT = 2, 3
CALLS = (1, 2, 3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with OtlpSink() as sink, Downstream() as downstream:
        env = {
            "APP_DOWNSTREAM": downstream.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "http-clients",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
        }
        with InstrumentedApp(APP, tmp_path_factory.mktemp("http-clients"), env) as app:
            yield app, sink, downstream
    assert sink.errors == []


def check_client(stack, route: str, downstream_path: str) -> None:
    app, sink, downstream = stack
    prefix = route.split("{")[0]
    for n in CALLS:
        response = requests.get(app.url(f"{prefix}{n}"), timeout=30)
        assert response.json() == {"status": 200}
    sink.wait_for(lambda s: len(s.spans(f"GET {route}")) == len(CALLS))
    sink.wait_for(
        lambda s: [
            p
            for p in s.points(signals.REQUEST_BREAKDOWN_TIME)
            if p.attributes["http.route"] == route and p.attributes["chokepoint.component"] == "http:127.0.0.1"
        ]
    )

    carried = {headers["traceparent"].split("-")[1]: path for path, headers in downstream.requests if path.startswith(downstream_path)}
    for server in sink.spans(f"GET {route}"):
        (client,) = [s for s in sink.spans() if s.parent_span_id == server.span_id]
        assert client.kind == CLIENT and client.trace_id == server.trace_id and client.name == "GET"
        n = int(carried[server.trace_id].split("/")[-1].split("?")[0])  # the downstream saw this trace's context
        assert n in CALLS
        assert client.attributes == {
            "http.request.method": "GET",
            "url.full": f"{downstream.url}{downstream_path}{n}",  # query string (the token) dropped
            "server.address": "127.0.0.1",
            "server.port": downstream.port,
            "http.response.status_code": 200,
        }
    assert len(carried) == len(CALLS)
    (server_time,) = [p for p in sink.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == route]
    assert server_time.count == len(CALLS)
    client_points = [p for p in sink.points(signals.HTTP_CLIENT_DURATION) if p.attributes["server.address"] == "127.0.0.1"]
    assert [p.attributes for p in client_points] == [{"server.address": "127.0.0.1", "http.request.method": "GET", "http.response.status_code": 200}]
    assert client_points[0].count >= len(CALLS)  # the module's other client test shares the host


def test_urllib3(stack):
    # server.address on the span comes from chokepoint's request hook (distro.urllib3_server_address)
    check_client(stack, "/urllib3/{n}", "/stock/")


def test_aiohttp(stack):
    check_client(stack, "/aiohttp/{n}", "/price/")
