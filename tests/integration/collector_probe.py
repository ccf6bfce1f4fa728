"""What the collector and dashboard integration tests share: polling, OTLP span batches,
the collector's ``/metrics`` as samples, and PromQL against a real Prometheus.

    wait_for(lambda: api_rows() or None, timeout_s=20)       # last value after the timeout
    body = server_spans("shop", "/cart", 250)                # ExportTraceServiceRequest bytes
    post_traces(collector.otlp_http, body)                   # the requests.Response
    samples = metric_samples(collector.api)                  # {(name, sorted labels): value}
    promql(prom.url, "up")                                   # the result vector/matrix
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from chokepoint.instrument import signals

SERVER = 2  # Span.SpanKind.SPAN_KIND_SERVER


def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.3):
    """``predicate()``'s first truthy value, polling every ``interval_s``; its last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def server_spans(
    service: str, route: str, n: int, *, name: str | None = None, first_trace_id: int = 1, duration_ms: Callable[[int], float] = lambda i: 5.0
) -> bytes:
    """One OTLP batch of ``n`` SERVER spans on ``route`` ending now-ish, span ``i`` in trace ``first_trace_id + i``."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key=signals.ATTR_SERVICE_NAME).value.string_value = service
    scope = resource_spans.scope_spans.add()
    now_ns = time.time_ns()
    for i in range(n):
        span = scope.spans.add(name=name or route, trace_id=(first_trace_id + i).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), kind=SERVER)
        span.start_time_unix_nano, span.end_time_unix_nano = now_ns, now_ns + int(duration_ms(i) * 1_000_000)
        span.attributes.add(key=signals.ATTR_HTTP_ROUTE).value.string_value = route
    return request.SerializeToString()


def post_traces(otlp_http_url: str, body: bytes, session=requests, timeout_s: float = 10) -> requests.Response:
    """POST one protobuf batch to the collector's ``/v1/traces``."""
    return session.post(f"{otlp_http_url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=timeout_s)


def metric_samples(api_url: str) -> dict[tuple[str, tuple], float]:
    """The collector's ``/metrics`` as ``{(sample name, sorted label items): value}``."""
    text = requests.get(f"{api_url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def promql(prom_url: str, expr: str) -> list:
    """An instant query's result; fails the test on an HTTP or PromQL error."""
    resp = requests.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def expressions_without_data(prom_url: str, exprs: list[str], timeout_s: float = 45.0) -> list[str]:
    """The expressions still returning no samples after ``timeout_s`` (re-queried every second)."""
    pending = list(exprs)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = [e for e in pending if not promql(prom_url, e)]
        if pending:
            time.sleep(1)
    return pending
