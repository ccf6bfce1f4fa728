"""The lean urllib3 path makes the spans the upstream urllib3 instrumentor (with chokepoint's
``request_hook``) makes under stable HTTP semconv, and sends the same headers, against a real
local HTTP server: pool managers and pools, headers or none, a 500, a redirect, retries, a
read timeout, a refused connection, an unknown method, captured headers, propagators,
suppression."""

from __future__ import annotations

import socket

import pytest
import urllib3
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from urllib3.util.retry import Retry

from chokepoint.instrument.distro import urllib3_server_address
from chokepoint.instrument.urllib3_lean import install_lean_urllib3, lean_urllib3_wanted
from tests.instrument.test_httpx_lean import INCOMING, ExtraPropagator, Server, run_calls

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def refused_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@pytest.fixture(params=["w3c", "w3c+extra"])
def stable_http(request, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    monkeypatch.delenv("CHOKEPOINT_URLLIB3", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    _OpenTelemetrySemanticConventionStability._initialize()
    mapping = _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    monkeypatch.setitem(mapping, _OpenTelemetryStabilitySignalType.HTTP, _StabilityMode.HTTP)
    previous = propagate.get_global_textmap()
    propagators = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    if request.param == "w3c+extra":
        propagators.append(ExtraPropagator())
    propagate.set_global_textmap(CompositePropagator(propagators))
    yield request.param
    propagate.set_global_textmap(previous)


class Traced:
    """The lean urllib3 path, or the upstream instrumentor with chokepoint's request hook."""

    def __init__(self, lean: bool):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = None
        self.undo = None
        if lean:
            self.undo = install_lean_urllib3(self.provider)
            assert self.undo is not None
        else:
            self.instrumentor = URLLib3Instrumentor()
            self.instrumentor.instrument(tracer_provider=self.provider, meter_provider=NoOpMeterProvider(), request_hook=urllib3_server_address)
        self.tracer = self.provider.get_tracer("test")

    def close(self):
        if self.undo is not None:
            self.undo()
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()

    def without_timeout(self) -> dict:
        return {}


def calls(base: str, refused: str) -> list:
    port = int(base.rsplit(":", 1)[1])
    outcomes = []
    manager = urllib3.PoolManager(timeout=5, headers={"X-Pool": "manager"})
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, timeout=5, headers={"X-Pool": "pool"})
    for call in [
        lambda: manager.request("GET", f"{base}/stock?sku=1", headers={"X-Order": "42"}),
        lambda: manager.request("POST", f"{base}/fail", body=b"{}", retries=False),
        lambda: manager.request("PURGE", f"{base}/cache"),
        lambda: manager.request("GET", f"{base}/redirect"),
        lambda: pool.urlopen("GET", "/direct?x=1"),  # no headers: what the pool sends is upstream's choice too
        lambda: pool.urlopen("GET", "/positional", None, {"X-Order": "7"}),
        lambda: pool.request("GET", "/fail/retried", retries=Retry(total=2, status_forcelist=[500], raise_on_status=False)),
        lambda: manager.request("GET", f"{base}/slow", timeout=0.2, retries=False),
        lambda: manager.request("GET", refused, retries=False),
    ]:
        try:
            outcomes.append(call().status)
        except urllib3.exceptions.HTTPError as exc:
            outcomes.append(type(exc).__name__)
    manager.clear()
    pool.close()
    return outcomes


def test_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    upstream = run_calls(False, server, refused_url, calls, Traced)
    lean = run_calls(True, server, refused_url, calls, Traced)
    spans, arrived, outcomes, _ = lean
    assert outcomes == [200, 500, 200, 200, 200, 200, 500, "ReadTimeoutError", "NewConnectionError"]
    assert spans == upstream[0]
    assert arrived == upstream[1]
    assert all(s["scope"][0] == "opentelemetry.instrumentation.urllib3" and s["kind"] is SpanKind.CLIENT for s in spans)
    by_url = {s["attributes"]["url.full"].replace("http://127.0.0.1:PORT", ""): s for s in spans}
    ok = by_url["/stock?sku=1"]
    assert ok["parent"] == "request" and ok["attributes"] == {
        "http.request.method": "GET",
        "url.full": "http://127.0.0.1:PORT/stock?sku=1",
        "server.address": "127.0.0.1",
        "server.port": "PORT",
        "http.response.status_code": "200",
    }
    assert by_url["/fail"]["status"] == (StatusCode.ERROR, None) and by_url["/fail"]["attributes"]["error.type"] == "500"
    assert by_url["/cache"]["name"] == "HTTP" and by_url["/cache"]["attributes"]["http.request.method_original"] == "PURGE"
    slow = by_url["/slow"]
    assert slow["status"][0] is StatusCode.ERROR and slow["events"][0][0] == "exception" and "error.type" not in slow["attributes"]
    assert {(a["trace"], a["tracestate"], a["baggage"]) for a in arrived} == {(INCOMING.split("-")[1], "vendor=x,other=y", "tenant=t1")}
    assert [a["path"] for a in arrived].count("/fail/retried") == 3  # retries inside one call: one span
    assert len([s for s in spans if s["attributes"]["url.full"].endswith("/fail/retried")]) == 1


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(CAPTURE + "CLIENT_REQUEST", "x-order,x-pool")
    monkeypatch.setenv(CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    upstream = run_calls(False, server, refused_url, calls, Traced)
    lean = run_calls(True, server, refused_url, calls, Traced)
    assert lean[:3] == upstream[:3]
    captured = {k: v for k, v in lean[0][0]["attributes"].items() if ".header." in k}
    assert captured["http.request.header.x_order"] == "('42',)"
    assert captured["http.response.header.content_type"] == "('application/json',)"


def test_suppressed_calls_make_no_span(stable_http, server, refused_url):
    def quiet(base, refused):
        with suppress_http_instrumentation():
            return [urllib3.request("GET", f"{base}/quiet", timeout=5).status]

    spans, arrived, outcomes, _ = run_calls(True, server, refused_url, quiet, Traced)
    assert outcomes == [200] and spans == [] and [a["trace"] for a in arrived] == [None]


def test_undo_and_not_over_the_upstream_instrumentor(stable_http):
    from urllib3.connectionpool import HTTPConnectionPool

    original = HTTPConnectionPool.__dict__["urlopen"]
    undo = install_lean_urllib3(TracerProvider(shutdown_on_exit=False))
    assert HTTPConnectionPool.__dict__["urlopen"].__wrapped__ is original
    assert install_lean_urllib3() is None  # once
    undo()
    assert HTTPConnectionPool.__dict__["urlopen"] is original
    instrumentor = URLLib3Instrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(shutdown_on_exit=False), meter_provider=NoOpMeterProvider())
    try:
        assert install_lean_urllib3(TracerProvider(shutdown_on_exit=False)) is None
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "CHOKEPOINT_URLLIB3": "upstream"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "urllib3"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}, False),
        ({}, False),
    ],
)
def test_when_the_lean_path_is_used(env, wanted):
    assert lean_urllib3_wanted(env) is wanted
