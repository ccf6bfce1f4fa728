"""The lean ``requests`` path makes the spans the upstream requests instrumentor makes (stable
HTTP semconv, the urllib3 instrumentor installed too) and sends the same headers, against a
real local HTTP server: successes, a 500, a redirect, a read timeout, a refused connection,
credentials and signed-URL query values, an unknown method, user agents, captured headers,
propagators, suppression."""

from __future__ import annotations

import pytest
import requests
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chokepoint.instrument.requests_lean import install_lean_requests, lean_requests_wanted
from tests.instrument.test_httpx_lean import INCOMING, ExtraPropagator, Server, run_calls

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def refused_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@pytest.fixture(params=["w3c", "w3c+extra"])
def stable_http(request, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    monkeypatch.delenv("CHOKEPOINT_REQUESTS", raising=False)
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
    """The lean requests path or the upstream requests instrumentor; the urllib3 instrumentor under both."""

    def __init__(self, lean: bool):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.urllib3 = URLLib3Instrumentor()
        self.urllib3.instrument(tracer_provider=self.provider, meter_provider=NoOpMeterProvider())
        self.requests = None
        self.undo = None
        if lean:
            self.undo = install_lean_requests(self.provider)
            assert self.undo is not None
        else:
            self.requests = RequestsInstrumentor()
            self.requests.instrument(tracer_provider=self.provider, meter_provider=NoOpMeterProvider())
        self.tracer = self.provider.get_tracer("test")

    def close(self):
        if self.undo is not None:
            self.undo()
        if self.requests is not None:
            self.requests.uninstrument()
        self.urllib3.uninstrument()

    def without_timeout(self) -> dict:
        return {}


def calls(base: str, refused: str) -> list:
    port = base.rsplit(":", 1)[1]
    outcomes = []
    with requests.Session() as session:
        for call in [
            lambda: session.get(f"{base}/stock?sku=1", headers={"X-Order": "42", "Authorization": "secret"}, timeout=5),
            lambda: session.post(f"{base}/fail", json={"n": 1}, timeout=5),
            lambda: session.request("PURGE", f"{base}/cache", timeout=5),
            lambda: session.get(f"http://user:pw@127.0.0.1:{port}/signed?Signature=abc&x=1", timeout=5),
            lambda: session.get(f"http://localhost:{port}/host?sig=a%20b", headers={"User-Agent": "Googlebot/2.1"}, timeout=5),
            lambda: session.get(f"{base}/redirect", timeout=5),
            lambda: session.get(f"{base}/slow", timeout=0.2),
            lambda: session.get(refused, timeout=5),
        ]:
            try:
                outcomes.append(call().status_code)
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def test_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    upstream = run_calls(False, server, refused_url, calls, Traced)
    lean = run_calls(True, server, refused_url, calls, Traced)
    spans, arrived, outcomes, _ = lean
    assert outcomes == [200, 500, 200, 200, 200, 200, "ReadTimeout", "ConnectionError"]
    assert spans == upstream[0]
    assert arrived == upstream[1]
    # one span per call, none from urllib3 underneath; the redirect is followed inside the
    # first send, where HTTP instrumentation is suppressed (as upstream): one span for both hops
    assert len(spans) == 8 and all(s["scope"][0] == "opentelemetry.instrumentation.requests" for s in spans)
    ok, fail, purge, signed, host, redirect, slow, refused = spans
    assert ok["name"] == "GET" and ok["kind"] is SpanKind.CLIENT and ok["parent"] == "request" and ok["trace"]
    assert ok["attributes"]["url.full"] == "http://127.0.0.1:PORT/stock?sku=1"
    assert ok["attributes"]["user_agent.original"].startswith("python-requests/")
    assert {k: ok["attributes"][k] for k in ("server.address", "network.peer.address", "server.port", "http.response.status_code")} == {
        "server.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "server.port": "PORT",
        "http.response.status_code": "200",
    }
    assert fail["status"] == (StatusCode.ERROR, None) and fail["attributes"]["error.type"] == "500"
    assert purge["name"] == "HTTP" and purge["attributes"]["http.request.method_original"] == "PURGE"
    assert signed["attributes"]["url.full"] == "http://REDACTED:REDACTED@127.0.0.1:PORT/signed?Signature=REDACTED&x=1"
    assert host["attributes"]["url.full"] == "http://localhost:PORT/host?sig=REDACTED"
    assert host["attributes"]["user_agent.synthetic.type"] == "bot"
    assert redirect["attributes"]["http.response.status_code"] == "200"  # the final response's, as upstream
    assert slow["attributes"]["error.type"] == "ReadTimeout" and slow["status"][0] is StatusCode.ERROR
    assert refused["attributes"]["error.type"] == "ConnectionError" and refused["events"][0][0] == "exception"
    assert {(a["trace"], a["tracestate"], a["baggage"]) for a in arrived} == {(INCOMING.split("-")[1], "vendor=x,other=y", "tenant=t1")}
    hops = [ok, fail, purge, signed, host, redirect, redirect, slow]  # /redirect, then /stock with the same context
    assert [(a["path"].split("?")[0], a["traceparent_span"]) for a in arrived] == [
        (path, s["id"]) for path, s in zip(["/stock", "/fail", "/cache", "/signed", "/host", "/redirect", "/stock", "/slow"], hops, strict=True)
    ]


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(CAPTURE + "CLIENT_REQUEST", "x-order,authorization")
    monkeypatch.setenv(CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    monkeypatch.setenv(CAPTURE + "SANITIZE_FIELDS", "authorization")
    upstream = run_calls(False, server, refused_url, calls, Traced)
    lean = run_calls(True, server, refused_url, calls, Traced)
    assert lean[:3] == upstream[:3]
    captured = {k: v for k, v in lean[0][0]["attributes"].items() if ".header." in k}
    assert captured["http.request.header.x_order"] == "('42',)"
    assert captured["http.request.header.authorization"] == "('[REDACTED]',)"
    assert captured["http.response.header.content_type"] == "('application/json',)"


def test_suppressed_calls_make_no_span(stable_http, server, refused_url):
    def quiet(base, refused):
        with suppress_http_instrumentation():
            return [requests.get(f"{base}/quiet", timeout=5).status_code]

    spans, arrived, outcomes, _ = run_calls(True, server, refused_url, quiet, Traced)
    assert outcomes == [200] and spans == [] and [a["trace"] for a in arrived] == [None]


def test_undo_and_not_over_the_upstream_instrumentor(stable_http):
    original = requests.Session.__dict__["send"]
    undo = install_lean_requests(TracerProvider(shutdown_on_exit=False))
    assert requests.Session.__dict__["send"].__wrapped__ is original
    assert install_lean_requests() is None  # once
    undo()
    assert requests.Session.__dict__["send"] is original
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(shutdown_on_exit=False), meter_provider=NoOpMeterProvider())
    try:
        assert install_lean_requests(TracerProvider(shutdown_on_exit=False)) is None
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "CHOKEPOINT_REQUESTS": "upstream"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}, False),
        ({}, False),
    ],
)
def test_when_the_lean_path_is_used(env, wanted):
    assert lean_requests_wanted(env) is wanted


def test_a_bad_switch_value_is_reported(caplog):
    assert lean_requests_wanted({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "CHOKEPOINT_REQUESTS": "fast"}) is True
    assert "CHOKEPOINT_REQUESTS='fast' is neither 'lean' nor 'upstream'" in caplog.text
