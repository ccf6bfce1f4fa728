"""Hand-built OTLP protobuf requests for the ingest tests (spans, metric points, temporality),
and a settable clock."""

from __future__ import annotations

import os

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

T0 = 1_700_000_000.0
NS = 1_000_000_000
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


def kvs(attrs: dict) -> list:
    out = []
    for k, v in attrs.items():
        a = common_pb2.AnyValue()
        if isinstance(v, bool):
            a.bool_value = v
        elif isinstance(v, int):
            a.int_value = v
        elif isinstance(v, float):
            a.double_value = v
        else:
            a.string_value = v
        out.append(common_pb2.KeyValue(key=k, value=a))
    return out


def span(name, kind, ms, attrs=None, trace_id=None, parent=b"", error=False, start_ms=0.0):
    s = trace_pb2.Span(
        trace_id=trace_id or os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=int((T0 + start_ms / 1000) * NS),
        end_time_unix_nano=int((T0 + (start_ms + ms) / 1000) * NS),
    )
    s.attributes.extend(kvs(attrs or {}))
    if error:
        s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return s


def traces_request(service: str, spans: list, resource_attrs: dict | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs({"service.name": service, **(resource_attrs or {})}))
    rs.scope_spans.add().spans.extend(spans)
    return req


def metrics_request(service: str, metrics: list) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kvs({"service.name": service}))
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def explicit_hist(name, bounds, counts, attrs=None, temporality=DELTA, start=T0, unit="s", total=None, minimum=None, maximum=None):
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.histogram.aggregation_temporality = temporality
    p = m.histogram.data_points.add(start_time_unix_nano=int(start * NS), time_unix_nano=int((T0 + 10) * NS), count=sum(counts))
    p.explicit_bounds.extend(bounds)
    p.bucket_counts.extend(counts)
    p.attributes.extend(kvs(attrs or {}))
    if total is not None:
        p.sum = total
    if minimum is not None:
        p.min = minimum
    if maximum is not None:
        p.max = maximum
    return m


def exp_hist(name, scale, offset, counts, attrs=None, temporality=DELTA, start=T0, unit="s", zero=0):
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.exponential_histogram.aggregation_temporality = temporality
    p = m.exponential_histogram.data_points.add(
        start_time_unix_nano=int(start * NS), time_unix_nano=int((T0 + 10) * NS), count=sum(counts) + zero, scale=scale, zero_count=zero
    )
    p.positive.offset = offset
    p.positive.bucket_counts.extend(counts)
    p.attributes.extend(kvs(attrs or {}))
    return m


def number(name, value, attrs=None, kind="gauge", temporality=CUMULATIVE, monotonic=True, start=T0):
    m = metrics_pb2.Metric(name=name)
    if kind == "gauge":
        p = m.gauge.data_points.add()
    else:
        m.sum.aggregation_temporality = temporality
        m.sum.is_monotonic = monotonic
        p = m.sum.data_points.add()
    p.start_time_unix_nano = int(start * NS)
    p.time_unix_nano = int((T0 + 10) * NS)
    if isinstance(value, int):
        p.as_int = value
    else:
        p.as_double = value
    p.attributes.extend(kvs(attrs or {}))
    return m


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def one(rows, **match):
    got = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(got) == 1, (match, rows)
    return got[0]
