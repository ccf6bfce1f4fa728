"""An oversized OTLP/HTTP body gets a 413 that the clients users run can read.

Clients that send the whole body before reading the answer (``urllib``, ``requests``, and
so the OpenTelemetry Python exporter) must see the 413, not a connection reset under their
upload; the refusal is counted, and the same connection's next request still works.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

LIMIT = 1024 * 1024
BIG = b"\x00" * (4 * LIMIT)
PROTOBUF = {"Content-Type": "application/x-protobuf"}

pytestmark = pytest.mark.parametrize("collector", [{"max_body_bytes": LIMIT}], indirect=True)


def test_requests_and_urllib_read_the_413(collector):
    url = collector.otlp_http + "/v1/traces"
    with requests.Session() as session:
        assert session.post(url, data=BIG, headers=PROTOBUF, timeout=60).status_code == 413
        # the connection was kept: an empty, valid request on the same session is accepted
        assert session.post(url, data=b"", headers=PROTOBUF, timeout=60).status_code == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=BIG, headers=PROTOBUF), timeout=60)
    assert refused.value.code == 413
    assert collector.store.rejected.get(("http", "too_large")) == 2


def test_otlp_http_exporter_reads_the_413(collector, caplog):
    recorder = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "oversized"}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("test")
    for i in range(8):  # 8 spans of 640 KiB attributes: one 5 MiB export, over the 1 MiB limit
        with tracer.start_as_current_span(f"big-{i}") as span:
            span.set_attribute("payload", "x" * (640 * 1024))
    exporter = OTLPSpanExporter(endpoint=collector.otlp_http + "/v1/traces", timeout=60)
    with caplog.at_level(logging.ERROR):
        assert exporter.export(recorder.get_finished_spans()) == SpanExportResult.FAILURE
    exporter.shutdown()
    provider.shutdown()
    assert "413" in caplog.text, caplog.text
    assert collector.store.rejected.get(("http", "too_large")) == 1
