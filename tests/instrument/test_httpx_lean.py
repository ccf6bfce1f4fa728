"""The lean httpx headers make the spans the upstream instrumentor makes, captured headers included."""

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chokepoint.instrument.httpx_lean import LazyHeaders, install_lean_httpx
from tests.integration.instrumented_app import Downstream

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_"


def spans_of_calls(monkeypatch, capture: bool, lean: bool) -> list:
    if capture:
        monkeypatch.setenv(CAPTURE + "REQUEST", "x-order,accept")
        monkeypatch.setenv(CAPTURE + "RESPONSE", "content-type")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    undo = install_lean_httpx() if lean else None
    try:
        with Downstream() as downstream, httpx.Client(timeout=5) as client:
            assert client.get(f"{downstream.url}/stock?sku=1", headers={"X-Order": "42"}).status_code == 200
            assert client.get(f"{downstream.url}/stock", headers=[("x-order", "7")]).status_code == 200
            with pytest.raises(httpx.ConnectError):
                client.get("http://127.0.0.1:9/refused")
    finally:
        if undo is not None:
            undo()
        instrumentor.uninstrument()
    port = str(downstream.port)
    return [
        (s.name, s.kind, s.status.status_code, {k: str(v).replace(port, "PORT") for k, v in s.attributes.items()}, [e.name for e in s.events])
        for s in exporter.get_finished_spans()
    ]


@pytest.mark.parametrize("capture", [False, True])
def test_lean_headers_make_the_upstream_spans(monkeypatch, capture):
    upstream = spans_of_calls(monkeypatch, capture, lean=False)
    lean = spans_of_calls(monkeypatch, capture, lean=True)
    assert len(lean) == 3
    assert lean[2][2] is StatusCode.ERROR and lean[2][4] == ["exception"]
    assert lean == upstream
    url = lean[0][3].get("url.full") or lean[0][3].get("http.url")  # semconv mode: per process
    assert url == "http://127.0.0.1:PORT/stock?sku=1"
    captured = {k: v for k, v in lean[0][3].items() if ".header." in k}
    if capture:
        assert captured["http.request.header.x_order"] == "('42',)"
        assert captured["http.response.header.content_type"] == "('application/json',)"
    else:
        assert captured == {}


def test_lazy_headers_copy_only_when_read():
    calls = []

    def normalize(headers, module):
        calls.append(headers)
        return {"a": ["1"]}

    lazy = LazyHeaders(normalize, [(b"A", b"1")], None)
    assert lazy and not LazyHeaders(normalize, [], None)
    assert calls == []
    assert dict(lazy) == {"a": ["1"]} and len(lazy) == 1
    assert len(calls) == 1
