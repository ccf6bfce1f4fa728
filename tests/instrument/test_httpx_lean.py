"""The lean httpx path makes the spans the upstream instrumentor makes (stable HTTP semconv)
and sends the same headers, against a real local HTTP server: successes, a 500, a read
timeout, a refused connection, credentials and signed-URL query values, an unknown method,
captured headers, a configured extra propagator, baggage, suppression, sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chokepoint.instrument import signals
from chokepoint.instrument.httpx_lean import http_semconv_mode, install_lean_httpx, lean_httpx_wanted
from chokepoint.instrument.instruments import AgentInstruments

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"
INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Server:
    """Answers every method: /fail with 500, /slow after 1 s, /redirect with 302 to /stock, else 200;
    records each request's headers."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                recorded.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith("/slow"):
                    time.sleep(1.0)
                body = b'{"ok": true}'
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/stock")
                else:
                    self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Served-By", "test, local")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client timed out and left (/slow)
                    self.wfile.write(body)

            do_GET = do_POST = do_PURGE = answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


class ExtraPropagator(TextMapPropagator):
    """A configured non-W3C propagator: its header must arrive too."""

    def extract(self, carrier, context=None, getter=None):
        return context

    def inject(self, carrier, context=None, setter=None):
        span = trace.get_current_span(context)
        carrier["x-extra-trace"] = format(span.get_span_context().span_id, "016x")

    @property
    def fields(self):
        return {"x-extra-trace"}


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
    """Both paths in ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (chokepoint's default), with the
    default propagators (W3C trace context + baggage) or those plus another one."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    monkeypatch.delenv("CHOKEPOINT_HTTPX", raising=False)
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
    """One path (``lean`` or ``upstream``) installed over an in-memory exporter."""

    def __init__(self, lean: bool):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        instruments = AgentInstruments(self.meters.get_meter("chokepoint.instrument"))
        instruments.lean.attach(self.meters, [self.reader], Resource.create({}))
        self.instrumentor = None
        self.undo = None
        if lean:
            self.undo = install_lean_httpx(instruments, self.provider)
            assert self.undo is not None
        else:
            self.instrumentor = HTTPXClientInstrumentor()
            self.instrumentor.instrument(tracer_provider=self.provider, meter_provider=NoOpMeterProvider())
        self.tracer = self.provider.get_tracer("test")

    def close(self):
        if self.undo is not None:
            self.undo()
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        self.meters.shutdown()

    def without_timeout(self) -> dict:
        data = self.reader.get_metrics_data()
        return {
            frozenset(p.attributes.items()): p.value
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT
            for p in m.data.data_points
        }


def sync_calls(base: str, refused: str) -> list:
    outcomes = []
    with httpx.Client(timeout=5) as client:
        calls = [
            lambda: client.get(f"{base}/stock?sku=1", headers={"X-Order": "42", "Authorization": "secret"}),
            lambda: client.post(f"{base}/fail", json={"n": 1}),
            lambda: client.request("PURGE", f"{base}/cache"),
            lambda: client.get(f"http://user:pw@127.0.0.1:{base.rsplit(':', 1)[1]}/signed?Signature=abc&x=1"),
            lambda: client.get(f"{base}/slow", timeout=0.2),
            lambda: client.get(refused),
        ]
        for call in calls:
            try:
                outcomes.append(call().status_code)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
    with httpx.Client(timeout=None) as client:
        outcomes.append(client.get(f"{base}/no-timeout").status_code)
    return outcomes


def async_calls(base: str, refused: str) -> list:
    async def run():
        outcomes = []
        async with httpx.AsyncClient(timeout=5) as client:
            outcomes.append((await client.get(f"{base}/async?sku=2", headers={"X-Order": "7"})).status_code)
            outcomes.append((await client.post(f"{base}/fail")).status_code)
            try:
                await client.get(refused)
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
        return outcomes

    return asyncio.run(run())


def run_calls(lean: bool, server: Server, refused: str, calls, make=None) -> tuple[list, list, list, dict]:
    """Spans (ids made relative), requests that arrived, outcomes and the timeout flags of ``calls``
    (``make(lean)``: the installed path, :class:`Traced` by default)."""
    traced = (make or Traced)(lean)
    server.requests.clear()
    incoming = propagate.extract({"traceparent": INCOMING, "tracestate": "vendor=x,other=y"})
    try:
        with traced.tracer.start_as_current_span("request", context=incoming) as parent:
            token = otel_context.attach(baggage.set_baggage("tenant", "t1"))
            try:
                outcomes = calls(server.url, refused)
            finally:
                otel_context.detach(token)
        flags = traced.without_timeout()
    finally:
        traced.close()
    spans = [s for s in traced.exporter.get_finished_spans() if s.name != "request"]
    port = str(server.port)
    ids = {s.context.span_id: f"span{i}" for i, s in enumerate(spans)} | {parent.get_span_context().span_id: "request"}
    described = [
        {
            "name": s.name,
            "kind": s.kind,
            "status": (s.status.status_code, s.status.description),
            "attributes": {k: str(v).replace(port, "PORT") for k, v in s.attributes.items()},
            "events": [(e.name, e.attributes.get("exception.type")) for e in s.events],
            "parent": ids.get(s.parent.span_id) if s.parent else None,
            "trace": s.context.trace_id == parent.get_span_context().trace_id,
            "scope": (s.instrumentation_scope.name, s.instrumentation_scope.version, s.instrumentation_scope.schema_url),
            "id": ids[s.context.span_id],
        }
        for s in spans
    ]
    by_id = {format(s.context.span_id, "016x"): ids[s.context.span_id] for s in spans}
    arrived = []
    for method, path, headers in server.requests:
        traceparent = headers.get("traceparent", "")
        arrived.append(
            {
                "method": method,
                "path": path,
                "traceparent_span": by_id.get(traceparent.split("-")[2]) if traceparent else None,
                "extra_span": by_id.get(headers.get("x-extra-trace")),
                "baggage": headers.get("baggage"),
                "tracestate": headers.get("tracestate"),
                "trace": traceparent.split("-")[1] if traceparent else None,
                "flags": traceparent.split("-")[3] if traceparent else None,
                "headers": sorted(k for k in headers if k not in ("traceparent", "x-extra-trace", "baggage", "tracestate")),
            }
        )
    return described, arrived, outcomes, flags


def test_sync_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    upstream = run_calls(False, server, refused_url, sync_calls)
    lean = run_calls(True, server, refused_url, sync_calls)
    spans, arrived, outcomes, flags = lean
    assert outcomes == [200, 500, 200, 200, "ReadTimeout", "ConnectError", 200]
    assert spans == upstream[0]
    assert arrived == upstream[1]
    assert outcomes == upstream[2]
    # what both make, spelled out once
    ok, fail, purge, signed, slow, refused, no_timeout = spans
    assert ok["name"] == "GET" and ok["kind"] is SpanKind.CLIENT and ok["parent"] == "request" and ok["trace"]
    assert ok["attributes"] == {
        "http.request.method": "GET",
        "url.full": "http://127.0.0.1:PORT/stock?sku=1",
        "server.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "server.port": "PORT",
        "network.peer.port": "PORT",
        "http.response.status_code": "200",
        "network.protocol.version": "1.1",
    }
    assert ok["scope"][0] == "opentelemetry.instrumentation.httpx"
    assert fail["status"] == (StatusCode.ERROR, None) and fail["attributes"]["error.type"] == "500"
    assert purge["name"] == "HTTP" and purge["attributes"]["http.request.method"] == "_OTHER"
    assert purge["attributes"]["http.request.method_original"] == "PURGE"
    assert signed["attributes"]["url.full"] == "http://REDACTED:REDACTED@127.0.0.1:PORT/signed?Signature=REDACTED&x=1"
    assert slow["attributes"]["error.type"] == "ReadTimeout" and slow["events"] == [("exception", "httpx.ReadTimeout")]
    assert slow["status"][0] is StatusCode.ERROR and slow["status"][1].startswith("ReadTimeout: ")
    assert refused["attributes"]["error.type"] == "ConnectError" and "http.response.status_code" not in refused["attributes"]
    assert no_timeout["status"] == (StatusCode.UNSET, None)
    # every request that arrived carries its own client span's context, the extra propagator's header and the baggage
    assert [a["traceparent_span"] for a in arrived] == [s["id"] for s in spans if s["id"] not in (refused["id"],)]
    extra = stable_http == "w3c+extra"
    assert all(a["extra_span"] == (a["traceparent_span"] if extra else None) and a["baggage"] == "tenant=t1" for a in arrived)
    assert {(a["trace"], a["flags"], a["tracestate"]) for a in arrived} == {(INCOMING.split("-")[1], "01", "vendor=x,other=y")}
    # the timeout flag: only the call with timeout=None, once
    assert flags == {frozenset({(signals.ATTR_SERVER_ADDRESS, "127.0.0.1")}): 1}


def test_async_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    upstream = run_calls(False, server, refused_url, async_calls)
    lean = run_calls(True, server, refused_url, async_calls)
    assert lean[2] == [200, 500, "ConnectError"]
    assert lean[:3] == upstream[:3]
    assert [s["parent"] for s in lean[0]] == ["request"] * 3
    assert all(a["traceparent_span"] for a in lean[1]) and len(lean[1]) == 2


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(CAPTURE + "CLIENT_REQUEST", "x-order,authorization,traceparent")
    monkeypatch.setenv(CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    monkeypatch.setenv(CAPTURE + "SANITIZE_FIELDS", "authorization")
    upstream = run_calls(False, server, refused_url, sync_calls)
    lean = run_calls(True, server, refused_url, sync_calls)
    assert lean[:3] == upstream[:3]
    captured = {k: v for k, v in lean[0][0]["attributes"].items() if ".header." in k}
    assert captured == {
        "http.request.header.x_order": "('42',)",
        "http.request.header.authorization": "('[REDACTED]',)",
        "http.response.header.content_type": "('application/json',)",
        "http.response.header.x_served_by": "('test', 'local')",
    }


def test_suppressed_calls_make_no_span_and_send_no_context(stable_http, server, refused_url):
    def calls(base, refused):
        with httpx.Client(timeout=5) as client:
            with suppress_http_instrumentation():
                client.get(f"{base}/quiet-http")
            with suppress_instrumentation():
                client.get(f"{base}/quiet-all")
        return []

    spans, arrived, _, _ = run_calls(True, server, refused_url, calls)
    assert spans == []
    assert [(a["path"], a["trace"], a["extra_span"], a["baggage"]) for a in arrived] == [
        ("/quiet-http", None, None, None),
        ("/quiet-all", None, None, None),
    ]


def test_excluded_urls_are_not_traced(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv("OTEL_PYTHON_HTTPX_EXCLUDED_URLS", "/health")

    def calls(base, refused):
        with httpx.Client(timeout=5) as client:
            return [client.get(f"{base}/health").status_code, client.get(f"{base}/stock").status_code]

    upstream = run_calls(False, server, refused_url, calls)
    lean = run_calls(True, server, refused_url, calls)
    assert [s["attributes"]["url.full"] for s in lean[0]] == ["http://127.0.0.1:PORT/stock"]
    assert lean[:3] == upstream[:3]


def test_undo_restores_the_transports(stable_http):
    original = httpx.HTTPTransport.__dict__["handle_request"], httpx.AsyncHTTPTransport.__dict__["handle_async_request"]
    undo = install_lean_httpx(None, TracerProvider(shutdown_on_exit=False))
    assert httpx.HTTPTransport.__dict__["handle_request"].__wrapped__ is original[0]
    assert install_lean_httpx() is None  # once
    undo()
    assert (httpx.HTTPTransport.__dict__["handle_request"], httpx.AsyncHTTPTransport.__dict__["handle_async_request"]) == original


def test_not_over_the_upstream_instrumentor(stable_http):
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(shutdown_on_exit=False), meter_provider=NoOpMeterProvider())
    try:
        assert install_lean_httpx(None, TracerProvider(shutdown_on_exit=False)) is None  # one span per call, not two
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": " database , http "}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "CHOKEPOINT_HTTPX": "Upstream"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis, httpx"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}, False),  # old + new names: upstream makes them
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,http/dup"}, False),
        ({}, False),  # old names
    ],
)
def test_when_the_lean_path_is_used(env, wanted):
    assert lean_httpx_wanted(env) is wanted
    if not wanted:
        assert install_lean_httpx(environ=env) is None


def test_semconv_mode_reads_like_upstream():
    assert http_semconv_mode({"OTEL_SEMCONV_STABILITY_OPT_IN": "database,http/dup"}) == "http/dup"
    assert http_semconv_mode({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}) == "default"
