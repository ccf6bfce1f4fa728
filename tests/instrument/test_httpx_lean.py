"""The lean httpx path makes the spans the upstream instrumentor makes (stable HTTP semconv)
and sends the same headers, against a real local HTTP server: successes, a 500, a read
timeout, a refused connection, credentials and signed-URL query values, an unknown method,
captured headers, a configured extra propagator, baggage, suppression, sync and async."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from chokepoint.instrument import signals
from chokepoint.instrument.httpx_lean import install_lean_httpx
from chokepoint.instrument.instruments import AgentInstruments
from tests.instrument import shared
from tests.instrument.shared import refused_url_fixture, server_fixture, stable_http_fixture  # noqa: F401 - fixtures


class TracedHttpx(shared.Traced):
    """The lean httpx path (with the agent's instruments, for the timeout flag) or the upstream instrumentor."""

    def __init__(self, lean: bool):
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        super().__init__(lean, self.install)

    def install(self, traced: shared.Traced, lean: bool) -> list:
        if not lean:
            return [self.meters.shutdown, shared.upstream_installed(HTTPXClientInstrumentor(), self.provider)]
        instruments = AgentInstruments(self.meters.get_meter("chokepoint.instrument"))
        instruments.lean.attach(self.meters, [self.reader], Resource.create({}))
        return [self.meters.shutdown, shared.lean_installed(install_lean_httpx(instruments, self.provider))]

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


def test_sync_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    spans, arrived, outcomes, flags = shared.same_as_upstream(server, refused_url, sync_calls, TracedHttpx)
    assert outcomes == [200, 500, 200, 200, "ReadTimeout", "ConnectError", 200]
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
    assert {(a["trace"], a["flags"], a["tracestate"]) for a in arrived} == {(shared.INCOMING.split("-")[1], "01", "vendor=x,other=y")}
    # the timeout flag: only the call with timeout=None, once
    assert flags == {frozenset({(signals.ATTR_SERVER_ADDRESS, "127.0.0.1")}): 1}


def test_async_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    lean = shared.same_as_upstream(server, refused_url, async_calls, TracedHttpx)
    assert lean[2] == [200, 500, "ConnectError"]
    assert [s["parent"] for s in lean[0]] == ["request"] * 3
    assert all(a["traceparent_span"] for a in lean[1]) and len(lean[1]) == 2


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_REQUEST", "x-order,authorization,traceparent")
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    monkeypatch.setenv(shared.CAPTURE + "SANITIZE_FIELDS", "authorization")
    lean = shared.same_as_upstream(server, refused_url, sync_calls, TracedHttpx)
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

    spans, arrived, _, _ = shared.run_calls(True, server, refused_url, calls, TracedHttpx)
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

    lean = shared.same_as_upstream(server, refused_url, calls, TracedHttpx)
    assert [s["attributes"]["url.full"] for s in lean[0]] == ["http://127.0.0.1:PORT/stock"]


def test_undo_restores_the_transports_and_not_over_the_upstream_instrumentor(stable_http):
    transports = [(httpx.HTTPTransport, "handle_request"), (httpx.AsyncHTTPTransport, "handle_async_request")]
    shared.assert_installs_once(lambda: install_lean_httpx(None, TracerProvider(shutdown_on_exit=False)), transports, HTTPXClientInstrumentor())
