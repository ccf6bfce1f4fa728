"""Overload: more concurrent senders than the collector admits → 429 + Retry-After, and nothing is lost."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from chokepoint.collector import catalog
from chokepoint.instrument import signals

SENDERS, BATCHES, SPANS = 8, 6, 512


def batch(sender: int, b: int) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key=signals.ATTR_SERVICE_NAME).value.string_value = "flood"
    scope = rs.scope_spans.add()
    now_ns = time.time_ns()
    for i in range(SPANS):
        span = scope.spans.add(name="GET /flood", trace_id=(sender * 10_000 + b * 1000 + i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), kind=2)
        span.start_time_unix_nano, span.end_time_unix_nano = now_ns, now_ns + 3_000_000
        span.attributes.add(key=signals.ATTR_HTTP_ROUTE).value.string_value = "/flood"
    return request.SerializeToString()


@pytest.mark.parametrize("collector", [{"max_inflight_requests": 1, "retry_after_s": 0}], indirect=True)
def test_overloaded_collector_answers_429_and_retried_batches_all_arrive(collector):
    statuses: list[int] = []
    lock = threading.Lock()

    def sender(k: int) -> None:
        session = requests.Session()
        for b in range(BATCHES):
            body = batch(k, b)
            while True:  # a well-behaved exporter: retry on 429 after Retry-After
                resp = session.post(f"{collector.otlp_http}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
                with lock:
                    statuses.append(resp.status_code)
                if resp.status_code != 429:
                    break
                assert resp.headers["Retry-After"] == "0"
                time.sleep(0.005)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(statuses) <= {200, 429}
    refused = statuses.count(429)
    assert refused > 0, "8 concurrent senders never collided on a 1-request admission limit"
    assert statuses.count(200) == SENDERS * BATCHES

    text = requests.get(f"{collector.api}/metrics", timeout=10).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[(catalog.INGEST_SPANS.sample_name, (("protocol", "http"),))] == SENDERS * BATCHES * SPANS
    assert samples[(catalog.INGEST_REJECTED.sample_name, (("protocol", "http"), ("reason", "overload")))] == refused
    rows = requests.get(f"{collector.api}/api/v1/endpoints", params={"service": "flood"}, timeout=10).json()["endpoints"]
    assert [(r["route"], r["count"]) for r in rows] == [("/flood", SENDERS * BATCHES * SPANS)]
