"""The real OpenTelemetry Python SDK exporters (OTLP/HTTP and OTLP/gRPC) → collector → REST API and /metrics."""

from __future__ import annotations

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.collector import catalog
from chokepoint.instrument import signals
from tests.integration.collector_probe import metric_samples, wait_for

ONE_SECOND_BUCKETS = [{"bucket_seconds": 1.0}]


def send_server_spans(exporter, service: str, ok: int, errors: int) -> None:
    provider = TracerProvider(resource=Resource.create({signals.ATTR_SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    tracer = provider.get_tracer("test")
    for i in range(ok + errors):
        attrs = {signals.ATTR_HTTP_ROUTE: "/items/{id}", signals.ATTR_HTTP_METHOD: "GET", signals.ATTR_HTTP_STATUS: 500 if i < errors else 200}
        with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER, attributes=attrs) as span:
            if i < errors:
                span.set_status(Status(StatusCode.ERROR))
    assert provider.force_flush(10_000)
    provider.shutdown()


def api(collector, path: str, **params) -> dict:
    resp = requests.get(f"{collector.api}/api/v1/{path}", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def scrape(collector) -> dict[tuple[str, tuple], float]:
    return metric_samples(collector.api)


def exporter(protocol: str, collector, http_exporter, grpc_exporter, path: str):
    """The SDK's OTLP exporter for ``protocol``, pointed at the collector."""
    if protocol == "http":
        return http_exporter(endpoint=f"{collector.otlp_http}{path}")
    return grpc_exporter(endpoint=collector.otlp_grpc, insecure=True)


@pytest.mark.parametrize("collector", ONE_SECOND_BUCKETS, indirect=True)
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_spans_reach_the_api_and_metrics_with_exact_counts(collector, protocol):
    send_server_spans(exporter(protocol, collector, HttpSpanExporter, GrpcSpanExporter, "/v1/traces"), "shop", ok=150, errors=50)

    endpoints = api(collector, "endpoints", service="shop")["endpoints"]
    assert [(e["service"], e["route"], e["count"]) for e in endpoints] == [("shop", "/items/{id}", 200)]
    assert endpoints[0]["error_rate"] == pytest.approx(0.25)
    services = api(collector, "services")["services"]
    assert [(s["name"], s["endpoints"]) for s in services] == [("shop", 1)]

    route_labels = (("route", "/items/{id}"), ("service", "shop"))
    metrics = wait_for(lambda: (m := scrape(collector)).get((catalog.REQUESTS.sample_name, route_labels)) and m)
    assert metrics[(catalog.INGEST_SPANS.sample_name, (("protocol", protocol),))] == 200
    assert metrics[(catalog.REQUESTS.sample_name, route_labels)] == 200
    assert metrics[(catalog.REQUEST_ERRORS.sample_name, route_labels)] == 50
    assert metrics[(catalog.REQUEST_DURATION.name + "_count", route_labels)] == 200


@pytest.mark.parametrize("collector", ONE_SECOND_BUCKETS, indirect=True)
def test_sdk_histogram_metrics_over_http(collector):
    reader = PeriodicExportingMetricReader(HttpMetricExporter(endpoint=f"{collector.otlp_http}/v1/metrics"), export_interval_millis=60_000)
    provider = MeterProvider(resource=Resource.create({signals.ATTR_SERVICE_NAME: "billing"}), metric_readers=[reader])
    histogram = provider.get_meter("test").create_histogram(signals.HTTP_SERVER_DURATION, unit="s")
    for i in range(120):
        histogram.record(0.010 + i / 10_000, {signals.ATTR_HTTP_ROUTE: "/pay", signals.ATTR_HTTP_METHOD: "POST", signals.ATTR_HTTP_STATUS: 200})
    assert provider.force_flush(10_000)
    provider.shutdown()

    endpoints = api(collector, "endpoints", service="billing")["endpoints"]
    assert [(e["route"], e["count"]) for e in endpoints] == [("/pay", 120)]
    assert 10.0 <= endpoints[0]["p50_ms"] <= 25.0
    metrics = wait_for(lambda: scrape(collector).get((catalog.INGEST_POINTS.sample_name, (("protocol", "http"),))))
    assert metrics >= 1


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_logs_are_accepted_and_counted_not_stored(collector, protocol):
    import logging

    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=Resource.create({signals.ATTR_SERVICE_NAME: "shop"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter(protocol, collector, HttpLogExporter, GrpcLogExporter, "/v1/logs")))
    logger = logging.getLogger(f"chokepoint-test-{protocol}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        for i in range(7):
            logger.info("order %d shipped", i)
        assert provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    metrics = scrape(collector)
    assert metrics[(catalog.INGEST_LOG_RECORDS.sample_name, (("protocol", protocol),))] == 7
    assert api(collector, "services")["services"] == []
