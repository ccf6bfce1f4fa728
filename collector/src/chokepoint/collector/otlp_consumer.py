"""The receivers' common path from a decoded OTLP request to the store, and their counters.

Both receivers (``receiver_http``, ``receiver_grpc``) decode a request, then call
:class:`OtlpConsumer`, which hands traces and metrics to the core's ``Ingestor`` and
builds the OTLP response (with ``partial_success`` when the ingestor rejected items).
Logs are accepted and counted (``chokepoint_ingest_log_records_total{protocol}``), not
stored.  Requests the receivers refuse are counted with ``store.count_rejected(protocol,
reason, n)``; the reasons are the ``REASON_*`` constants below.

:class:`ReceiverStatsCollector` is a ``prometheus_client`` collector (duck-typed
``collect()``) for the counters kept here; the service registers it next to the core's
``StoreCollector``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from prometheus_client.core import CounterMetricFamily

from chokepoint.collector import catalog

log = logging.getLogger(__name__)

PROTOCOL_HTTP = "http"
PROTOCOL_GRPC = "grpc"

REASON_MALFORMED = "malformed"
REASON_TOO_LARGE = "too_large"
REASON_UNSUPPORTED = "unsupported_media_type"
REASON_OVERLOAD = "overload"
REASON_UNAUTHENTICATED = "unauthenticated"
REASON_INTERNAL = "internal"

SIGNALS = ("traces", "metrics", "logs")
REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest, "logs": ExportLogsServiceRequest}
RESPONSE_TYPES = {"traces": ExportTraceServiceResponse, "metrics": ExportMetricsServiceResponse, "logs": ExportLogsServiceResponse}


class IngestFailure(RuntimeError):
    """The ingestor raised: nothing of the request can be said to be stored."""


class ReceiverStats:
    """Thread-safe counters the receivers keep themselves (the store keeps the rest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log_records: dict[str, int] = defaultdict(int)
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (protocol, signal) -> accepted requests

    def add_log_records(self, protocol: str, n: int) -> None:
        with self._lock:
            self.log_records[protocol] += n

    def add_request(self, protocol: str, signal: str) -> None:
        with self._lock:
            self.requests[(protocol, signal)] += 1

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {"log_records": dict(self.log_records), "requests": dict(self.requests)}


class ReceiverStatsCollector:
    """Exposes :class:`ReceiverStats` to Prometheus (``chokepoint_ingest_log_records_total``)."""

    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable:
        snap = self._stats.snapshot()
        metric = catalog.INGEST_LOG_RECORDS
        family = CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))
        for protocol in (PROTOCOL_HTTP, PROTOCOL_GRPC):
            family.add_metric([protocol], snap["log_records"].get(protocol, 0))
        yield family


def count_log_records(request: ExportLogsServiceRequest) -> int:
    return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)


class OtlpConsumer:
    """``consume(signal, request, protocol) -> response message``; raises :class:`IngestFailure`."""

    def __init__(self, ingestor, store, stats: ReceiverStats | None = None) -> None:
        self.ingestor = ingestor
        self.store = store
        self.stats = stats or ReceiverStats()

    def reject(self, protocol: str, reason: str, n: int = 1) -> None:
        """Count a refused request; never raises (counting must not turn a 4xx into a 500)."""
        try:
            self.store.count_rejected(protocol, reason, n)
        except Exception:
            log.exception("count_rejected(%s, %s) failed", protocol, reason)

    def consume(self, signal: str, request, protocol: str):
        if signal == "logs":
            self.stats.add_log_records(protocol, count_log_records(request))
            self.stats.add_request(protocol, signal)
            return ExportLogsServiceResponse()
        try:
            consume = self.ingestor.consume_traces if signal == "traces" else self.ingestor.consume_metrics
            result = consume(request, protocol=protocol)  # the ingestor counts accepted and invalid items
        except Exception as exc:
            log.exception("ingestor failed on an OTLP %s request (%s)", signal, protocol)
            self.reject(protocol, REASON_INTERNAL)
            raise IngestFailure(f"internal error while ingesting {signal}: {type(exc).__name__}") from exc
        self.stats.add_request(protocol, signal)
        response = RESPONSE_TYPES[signal]()
        rejected = int(getattr(result, "rejected", 0) or 0)
        if rejected > 0:
            partial = response.partial_success
            if signal == "traces":
                partial.rejected_spans = rejected
            else:
                partial.rejected_data_points = rejected
            partial.error_message = getattr(result, "error_message", "") or f"{rejected} items rejected"
        return response
