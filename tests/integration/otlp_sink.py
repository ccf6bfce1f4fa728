"""A small real OTLP/HTTP protobuf receiver for the instrument's integration tests and benchmark.

Usage::

    with OtlpSink() as sink:                 # listens on 127.0.0.1:<free port>
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
        ...
        sink.wait_for(lambda s: s.spans(name="GET /items"), timeout_s=20)
        sink.spans()          # [SinkSpan(...)] decoded with opentelemetry-proto
        sink.points("http.server.request.duration")   # latest data point per attribute set

Accepts ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf, optionally gzip), answers
200 with an empty export response.  Not the chokepoint collector (that is ``collector/``):
just enough to assert exactly what the agent put on the wire.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(key_values) -> dict:
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass
class SinkSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind value (2 server, 3 client, 4 producer, 5 consumer)
    attributes: dict
    resource: dict
    status_code: int
    duration_s: float
    start_unix_nano: int = 0  # when it started (an export's order is not the calls' order)


@dataclass
class SinkPoint:
    metric: str
    kind: str  # histogram | exponential_histogram | sum | gauge
    attributes: dict
    resource: dict
    value: float | None = None  # sum / gauge
    count: int | None = None  # histograms
    total: float | None = None  # histograms
    temporality: int = 0
    extra: dict = field(default_factory=dict)


class OtlpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._spans: list[SinkSpan] = []
        self._points: list[SinkPoint] = []
        self.requests = {"traces": 0, "metrics": 0}
        self.errors: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    if self.path == "/v1/traces":
                        sink._add_traces(body)
                        reply = ExportTraceServiceResponse().SerializeToString()
                    elif self.path == "/v1/metrics":
                        sink._add_metrics(body)
                        reply = ExportMetricsServiceResponse().SerializeToString()
                    else:
                        self.send_error(404)
                        return
                except Exception as exc:  # a decode error is a test failure, reported by .errors
                    sink.errors.append(f"{self.path}: {exc!r}")
                    self.send_error(400)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> OtlpSink:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ decoding
    def _add_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        SinkSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes=attributes(span.attributes),
                            resource=resource,
                            status_code=span.status.code,
                            duration_s=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e9,
                            start_unix_nano=span.start_time_unix_nano,
                        )
                    )
        with self._lock:
            self._spans.extend(spans)
            self.requests["traces"] += 1

    def _add_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            resource = attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        sink_point = SinkPoint(metric=metric.name, kind=kind, attributes=attributes(point.attributes), resource=resource)
                        if kind in ("histogram", "exponential_histogram"):
                            sink_point.count = point.count
                            sink_point.total = point.sum
                            sink_point.temporality = data.aggregation_temporality
                            if kind == "exponential_histogram":
                                sink_point.extra = {"scale": point.scale}
                        else:
                            sink_point.value = point.as_double if point.HasField("as_double") else point.as_int
                            sink_point.temporality = getattr(data, "aggregation_temporality", 0)
                        points.append(sink_point)
        with self._lock:
            self._points.extend(points)
            self.requests["metrics"] += 1

    # ------------------------------------------------------------ queries
    def spans(self, name: str | None = None) -> list[SinkSpan]:
        with self._lock:
            return [s for s in self._spans if name is None or s.name == name]

    def all_points(self, metric: str | None = None) -> list[SinkPoint]:
        with self._lock:
            return [p for p in self._points if metric is None or p.metric == metric]

    def points(self, metric: str) -> list[SinkPoint]:
        """The latest point per (process, attribute set) — with cumulative temporality, the
        running totals; a process is told apart by its ``service.instance.id``."""
        latest: dict[tuple, SinkPoint] = {}
        for point in self.all_points(metric):
            key = (point.resource.get("service.instance.id"), *sorted((k, repr(v)) for k, v in point.attributes.items()))
            latest[key] = point
        return list(latest.values())

    def wait_for(self, predicate, timeout_s: float = 30.0, interval_s: float = 0.2):
        deadline = time.monotonic() + timeout_s
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"OTLP sink: condition not met within {timeout_s}s; errors={self.errors}")
            time.sleep(interval_s)
