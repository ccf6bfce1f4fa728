"""A real Prometheus scrapes the collector's /metrics; PromQL returns the ingested counts."""

from __future__ import annotations

import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chokepoint.collector import catalog
from chokepoint.instrument import signals
from devservices import PrometheusService, ServiceUnavailable


def spans_request(n: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add(key=signals.ATTR_SERVICE_NAME)
    attr.value.string_value = "shop"
    scope = resource_spans.scope_spans.add()
    now_ns = time.time_ns()
    for i in range(n):
        span = scope.spans.add(name="GET /cart", trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), kind=2)
        span.start_time_unix_nano, span.end_time_unix_nano = now_ns, now_ns + 5_000_000
        route = span.attributes.add(key=signals.ATTR_HTTP_ROUTE)
        route.value.string_value = "/cart"
    return request.SerializeToString()


def promql(prom: PrometheusService, query: str) -> list[dict]:
    resp = requests.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["result"]


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_prometheus_scrapes_ingested_counts(collector):
    for _ in range(3):
        resp = requests.post(f"{collector.otlp_http}/v1/traces", data=spans_request(250), headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert resp.status_code == 200
    try:
        prom = PrometheusService([collector.api.removeprefix("http://")], scrape_interval="1s")
        prom.__enter__()
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        ingested = f'{catalog.INGEST_SPANS.sample_name}{{protocol="http"}}'
        requests_total = f'{catalog.REQUESTS.sample_name}{{service="shop",route="/cart"}}'
        deadline = time.monotonic() + 30
        values: dict[str, float] = {}
        while time.monotonic() < deadline and len(values) < 2:
            for query in (ingested, requests_total):
                result = promql(prom, query)
                if result:
                    values[query] = float(result[0]["value"][1])
            time.sleep(0.5)
        assert values.get(ingested) == 750
        assert values.get(requests_total) == 750
        up = promql(prom, "up")
        assert [float(r["value"][1]) for r in up] == [1.0]
    finally:
        prom.stop()
