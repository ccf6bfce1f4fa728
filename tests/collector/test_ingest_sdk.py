"""The ingest mapping fed by the real OpenTelemetry SDK and its OTLP protobuf encoders.

The SDK records known values (in-memory reader/exporter, no network); the OTLP encoders
the exporters use turn them into export requests; the ingestor must recover the exact
counts and quantiles within the sketch's accuracy plus the source histogram's resolution.
"""

from __future__ import annotations

import random
import time

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store
from chokepoint.instrument import signals as sig


def exact(values, q):
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.fixture
def store():
    return Store()  # real clock: the SDK stamps real times


def test_sdk_exponential_histogram_cumulative_exports(store):
    ingestor = Ingestor(store)  # created before the app's meter: its streams count in full
    reader = InMemoryMetricReader()  # cumulative temporality, like the OTLP exporter's default
    provider = MeterProvider(
        resource=Resource.create({"service.name": "sdk-app"}),
        metric_readers=[reader],
        views=[View(instrument_name=sig.HTTP_SERVER_DURATION, aggregation=ExponentialBucketHistogramAggregation())],
    )
    hist = provider.get_meter("test").create_histogram(sig.HTTP_SERVER_DURATION, unit="s")
    rnd = random.Random(3)
    first = [rnd.lognormvariate(-3.5, 0.8) for _ in range(3000)]
    for v in first:
        hist.record(v, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 200})
    ingestor.consume_metrics(encode_metrics(reader.get_metrics_data()))
    second = [rnd.lognormvariate(-2.0, 0.5) for _ in range(1000)]
    for v in second:
        hist.record(v, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 200})
    for _ in range(10):
        hist.record(0.9, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 503})
    request = encode_metrics(reader.get_metrics_data())
    ingestor.consume_metrics(request)  # cumulative again: only the new part counts
    provider.shutdown()
    scales = [p.scale for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics for p in m.exponential_histogram.data_points]
    # the SDK downscales to fit 160 buckets; its bucket half-width bounds the extra error
    bound = 1.01 * 2 ** (2.0 ** -min(scales) / 2) - 1

    [row] = store.endpoints("sdk-app", window_s=600)
    values = first + second + [0.9] * 10
    assert row["route"] == "/items/{id}" and row["count"] == len(values)
    assert row["error_rate"] == pytest.approx(10 / len(values), abs=1e-6)
    assert min(scales) >= 3
    for key, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
        want = exact(values, q) * 1000
        assert abs(row[key] - want) / want <= bound, (key, row[key], want, bound)


def test_sdk_explicit_histogram_delta_and_gauges(store):
    ingestor = Ingestor(store)
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "sdk-app"}), metric_readers=[reader])
    meter = provider.get_meter("test")
    wait = meter.create_histogram(sig.DB_POOL_WAIT_TIME, unit="s")
    timeouts = meter.create_counter(sig.DB_POOL_TIMEOUTS)
    used = meter.create_up_down_counter(sig.DB_POOL_CONNECTION_COUNT)
    for v in (0.003, 0.004, 0.2):
        wait.record(v, {sig.ATTR_DB_POOL_NAME: "main"})
    timeouts.add(2, {sig.ATTR_DB_POOL_NAME: "main"})
    used.add(5, {sig.ATTR_DB_POOL_NAME: "main", sig.ATTR_DB_POOL_STATE: "used"})
    ingestor.consume_metrics(encode_metrics(reader.get_metrics_data()))
    timeouts.add(1, {sig.ATTR_DB_POOL_NAME: "main"})
    used.add(3, {sig.ATTR_DB_POOL_NAME: "main", sig.ATTR_DB_POOL_STATE: "used"})
    ingestor.consume_metrics(encode_metrics(reader.get_metrics_data()))
    provider.shutdown()
    [pool] = store.pools()
    assert (pool["name"], pool["used"], pool["timeouts"], pool["wait_count"]) == ("main", 8, 3, 3)
    # SDK default buckets (0, 5, 10, 25, ... ms): 0.2 s falls in (0.1, 0.25] — no better than the bucket
    assert 100.0 <= pool["wait_p99_ms"] <= 250.0


def test_sdk_spans_server_client_and_kept_error_trace(store):
    ingestor = Ingestor(store)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-traced"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(30):
        with tracer.start_as_current_span(
            "GET /orders/{id}", kind=SpanKind.SERVER, attributes={"http.route": "/orders/{id}", "http.request.method": "GET"}
        ) as root:
            with tracer.start_as_current_span(
                "SELECT", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql", "db.query.text": f"SELECT * FROM orders WHERE id = {i}"}
            ):
                time.sleep(0.001)
            if i == 29:
                root.set_attribute("http.response.status_code", 500)
                root.set_status(Status(StatusCode.ERROR))
    result = ingestor.consume_traces(encode_spans(exporter.get_finished_spans()))
    provider.shutdown()
    assert (result.accepted, result.rejected) == (60, 0)
    [route] = store.endpoints("sdk-traced", window_s=600)
    assert (route["route"], route["count"], route["error_rate"]) == ("/orders/{id}", 30, pytest.approx(1 / 30, abs=1e-6))
    [dep] = store.dependencies(window_s=600)
    assert (dep["kind"], dep["target"], dep["count"]) == ("db", "SELECT * FROM orders WHERE id = ?", 30)
    assert dep["p50_ms"] >= 1.0
    bd = store.breakdown("sdk-traced", "/orders/{id}", window_s=600)
    assert bd["requests"] == 30 and bd["all"]["db"] >= 1.0 and "self" in bd["all"]
    [kept] = store.traces()
    assert kept["keep_reason"] == "error" and kept["error"] and len(kept["spans"]) == 2
