"""Kafka records with neither ``otelcol.signal`` header nor default topic: the signal from the record itself."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chokepoint.collector.receiver_kafka import sniff_signal


def traces(n: int = 3) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        scope.spans.add(name=f"GET /x{i}", trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), kind=2)
    return request.SerializeToString()


def metrics() -> bytes:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    # names of 16 bytes and descriptions of 8: what a span's ids would be
    gauge = scope.metrics.add(name="db.client.usage0", description="in use..", unit="{connection}")
    gauge.gauge.data_points.add(as_int=3, time_unix_nano=1_700_000_000_000_000_000)
    total = scope.metrics.add(name="http.server.request.duration", unit="s")
    total.histogram.data_points.add(count=4, sum=0.5, bucket_counts=[1, 3], explicit_bounds=[0.1])
    return request.SerializeToString()


def logs() -> bytes:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1_700_000_000_000_000_000, severity_number=9)
    record.body.string_value = "hello"
    return request.SerializeToString()


def test_traces_and_metrics_are_told_apart_by_the_record():
    signal, request = sniff_signal(traces())
    assert signal == "traces" and len(request.resource_spans[0].scope_spans[0].spans) == 3
    signal, request = sniff_signal(metrics())
    assert signal == "metrics" and [m.name for m in request.resource_metrics[0].scope_metrics[0].metrics][1] == "http.server.request.duration"


def test_logs_garbage_and_empty_requests_are_unknown():
    for value in (logs(), b"\xff\x00garbage", b"", ExportTraceServiceRequest().SerializeToString()):
        assert sniff_signal(value) == (None, None)
