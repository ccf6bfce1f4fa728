"""Restart: stop the service, start it again on the same SQLite file, the aggregates are still there."""

from __future__ import annotations

import time

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from chokepoint.instrument import signals


def spans(n: int, route: str) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key=signals.ATTR_SERVICE_NAME).value.string_value = "shop"
    scope = rs.scope_spans.add()
    now_ns = time.time_ns()
    for i in range(n):
        span = scope.spans.add(name=route, trace_id=(i + 7).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), kind=2)
        span.start_time_unix_nano, span.end_time_unix_nano = now_ns, now_ns + (i % 20 + 1) * 1_000_000
        span.attributes.add(key=signals.ATTR_HTTP_ROUTE).value.string_value = route
    return request.SerializeToString()


def endpoints(service: CollectorService) -> list[tuple]:
    rows = requests.get(f"{service.api_url}/api/v1/endpoints", params={"service": "shop", "window": 600}, timeout=10).json()["endpoints"]
    return sorted((r["route"], r["count"], r["p99_ms"]) for r in rows)


def test_restart_on_the_same_sqlite_file_keeps_aggregates(tmp_path):
    config = CollectorConfig(otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=tmp_path, bucket_seconds=1.0)
    first = CollectorService(config)
    first.start()
    try:
        for route, n in (("/cart", 300), ("/checkout", 120)):
            resp = requests.post(f"{first.otlp_http_url}/v1/traces", data=spans(n, route), headers={"Content-Type": "application/x-protobuf"}, timeout=10)
            assert resp.status_code == 200
        before = endpoints(first)
        assert [(r, c) for r, c, _ in before] == [("/cart", 300), ("/checkout", 120)]
        time.sleep(1.2)  # let the bucket close so it is a persisted one
    finally:
        first.shutdown()
        first.shutdown()  # idempotent
    assert (tmp_path / "chokepoint.sqlite").stat().st_size > 0

    second = CollectorService(config)
    second.start()
    try:
        assert second.restored_buckets >= 1
        assert endpoints(second) == before
    finally:
        second.shutdown()
