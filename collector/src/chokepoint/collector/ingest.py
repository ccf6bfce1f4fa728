"""OTLP → store mapping: ``Ingestor.consume_traces`` / ``consume_metrics``.

Usage::

    ingestor = Ingestor(store)
    result = ingestor.consume_traces(ExportTraceServiceRequest.FromString(body))
    result.accepted, result.rejected, result.error_message   # for OTLP partial_success
    ingestor.consume_metrics(ExportMetricsServiceRequest.FromString(body))

The two paths, each in its own module (the manual of each is its docstring):

- ``ingest_spans.SpanIngestor`` (``ingestor.spans``): spans → route and dependency latency
  and errors, the breakdown of foreign traces, the kept-trace decision, the buffer of
  children exported before their root.
- ``ingest_points.MetricIngestor`` (``ingestor.metrics``): metric points → the store through
  one table of handlers by metric name (``POINT_HANDLERS``), with
  ``temporality.CumulativeToDelta`` (``ingestor.metrics.streams``) turning cumulative sums
  and histograms into deltas per stream.
- ``otlp_values``: what both share (attribute values, the resource's service,
  ``IngestResult``, the agent's authority names).

The paths meet in the store: a service whose metrics carry a signal (route or dependency
latency, the breakdown counter, any ``chokepoint.*`` metric) is *metric-authoritative* for it
(``Store.mark_metric_authority``), and its spans stop feeding that signal (no double counting).
"""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chokepoint.collector.ingest_points import MetricIngestor
from chokepoint.collector.ingest_spans import KIND_NAMES, SpanIngestor
from chokepoint.collector.otlp_values import AGENT, AGENT_DISTRO, AGENT_METRIC_PREFIX, IngestResult, any_value, attributes, resource_service
from chokepoint.collector.store import Store
from chokepoint.collector.temporality import UNIT_TO_SECONDS

__all__ = [
    "AGENT",
    "AGENT_DISTRO",
    "AGENT_METRIC_PREFIX",
    "KIND_NAMES",
    "UNIT_TO_SECONDS",
    "IngestResult",
    "Ingestor",
    "any_value",
    "attributes",
    "resource_service",
]


class Ingestor:
    """Walks OTLP export requests into a ``Store``; see the module docstring."""

    def __init__(self, store: Store, protocol: str = "otlp") -> None:
        self.store = store
        self.protocol = protocol
        self.spans = SpanIngestor(store, protocol)
        self.metrics = MetricIngestor(store, protocol)

    def consume_traces(self, request: ExportTraceServiceRequest, protocol: str | None = None) -> IngestResult:
        return self.spans.consume_traces(request, protocol)

    def consume_metrics(self, request: ExportMetricsServiceRequest, protocol: str | None = None) -> IngestResult:
        return self.metrics.consume_metrics(request, protocol)
