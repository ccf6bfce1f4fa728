"""The agent's own metric instruments, and how a finished span becomes metrics.

Usage::

    instruments = AgentInstruments(meter)
    instruments.record_span(span)                      # every finished span: latency histograms
    instruments.record_request(root, breakdown, slow)  # every finished request: breakdown + flags

All names come from :mod:`chokepoint.instrument.signals`.  Latency histograms are
recorded here from span timings instead of by the upstream instrumentors (whose meters
the agent replaces with no-ops): one set of attribute names, and the per-request
instruments are :mod:`chokepoint.instrument.lean_metrics` (microseconds per request
instead of the SDK's tens of microseconds per value), and so are the flag counters
(an app with the anti-pattern raises them on every request) and the kept-trace counter.
Dropped spans use an ordinary SDK counter.

Attributes are read from the span's plain dict (:func:`~chokepoint.instrument.breakdown.plain_attributes`),
not through the SDK's public ``attributes`` (a new ``MappingProxyType`` per access).
Per-request costs: docs/BENCHMARKS.md, "The agent's recording path".

``record_span`` returns the span's category (``"db"``, ``"http"``, ``"kafka"`` or
``None``) and a detail (HTTP: the host; DB: ``None`` for a statement, else the operation
name such as ``connect``), so the breakdown need not look again.

Attributes per histogram:

- ``http.server.request.duration``: ``http.route``, ``http.request.method``,
  ``http.response.status_code`` (+ ``error.type`` on failure).
- ``http.client.request.duration``: ``server.address``, ``http.request.method``,
  ``http.response.status_code``.
- ``db.client.operation.duration``: ``db.system.name``, ``db.query.text`` (normalized,
  literals replaced; at most ``MAX_STATEMENTS`` distinct, then ``"other"``).
- ``messaging.client.operation.duration`` / ``messaging.process.duration``:
  ``messaging.system``, ``messaging.destination.name``, ``messaging.operation.type``.
- ``http.server.response.body.size`` (bytes): ``http.route``,
  ``chokepoint.http.response.compressed``; from the ``Content-Length`` /
  ``Content-Encoding`` response headers the server instrumentation captures.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, StatusCode

from chokepoint.instrument import signals
from chokepoint.instrument.breakdown import (
    MESSAGING_SYSTEM_KEY,
    Breakdown,
    first_attribute,
    plain_attributes,
)
from chokepoint.instrument.lean_metrics import AttributesCounter, LeanMetrics
from chokepoint.instrument.sanitize import normalize_sql

MAX_STATEMENTS = 500
ROUTE_KEYS = ("http.route",)
STATEMENT_KEYS = ("db.query.text", "db.statement")
DESTINATION_KEYS = ("messaging.destination.name", "messaging.destination")
OPERATION_KEYS = ("messaging.operation.type", "messaging.operation")
CONTENT_LENGTH_KEYS = ("http.response.header.content_length", "http.response.header.content-length")
CONTENT_ENCODING_KEYS = ("http.response.header.content_encoding", "http.response.header.content-encoding")
# Server instrumentation captures these two response headers (no values of any other header).
CAPTURED_RESPONSE_HEADERS = "content-length,content-encoding"


def route_of_attributes(attributes, name: str) -> str:
    """``http.route``; without one (404s, plain WSGI/ASGI apps) the span name if it holds no
    path, else the method — never the raw path, whose cardinality is unbounded (scanners)."""
    route = attributes.get("http.route")
    if route:
        return str(route)
    if "/" not in name:
        return name
    method = attributes.get("http.request.method") or attributes.get("http.method")
    return f"{method} (unrouted)" if method else "(unrouted)"


def route_of(span) -> str:
    return route_of_attributes(plain_attributes(span), span.name)


def _header_value(attributes, keys):
    value = first_attribute(attributes, keys)
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return value


K_SERVER = (signals.ATTR_HTTP_ROUTE, signals.ATTR_HTTP_METHOD, signals.ATTR_HTTP_STATUS, signals.ATTR_ERROR_TYPE)
K_SERVER_OK = K_SERVER[:3]
K_CLIENT = (signals.ATTR_SERVER_ADDRESS, signals.ATTR_HTTP_METHOD, signals.ATTR_HTTP_STATUS, signals.ATTR_ERROR_TYPE)
K_CLIENT_OK = K_CLIENT[:3]
K_DB = (signals.ATTR_DB_SYSTEM, signals.ATTR_DB_STATEMENT)
K_MESSAGING = (signals.ATTR_MESSAGING_SYSTEM, signals.ATTR_MESSAGING_DESTINATION, signals.ATTR_MESSAGING_OPERATION)
K_BODY = (signals.ATTR_HTTP_ROUTE, signals.ATTR_RESPONSE_COMPRESSED)
K_BREAKDOWN = (signals.ATTR_HTTP_ROUTE, signals.ATTR_COMPONENT, signals.ATTR_SLOW)
K_ROUTE = (signals.ATTR_HTTP_ROUTE,)
_ERROR = StatusCode.ERROR
_SERVER = SpanKind.SERVER
_CLIENT = SpanKind.CLIENT
_PRODUCER = SpanKind.PRODUCER
_CONSUMER = SpanKind.CONSUMER


class AgentInstruments:
    def __init__(self, meter: Meter, lean: LeanMetrics | None = None):
        self.lean = lean or LeanMetrics("chokepoint.instrument")
        lean = self.lean
        self.server_duration = lean.histogram(signals.HTTP_SERVER_DURATION, "s", "Duration of HTTP server requests")
        self.client_duration = lean.histogram(signals.HTTP_CLIENT_DURATION, "s", "Duration of outbound HTTP requests")
        self.db_duration = lean.histogram(signals.DB_CLIENT_OPERATION_DURATION, "s", "Duration of DB operations")
        self.messaging_duration = lean.histogram(signals.MESSAGING_CLIENT_OPERATION_DURATION, "s", "Duration of messaging operations")
        self.messaging_process_duration = lean.histogram(signals.MESSAGING_PROCESS_DURATION, "s", "Duration of processing a message")
        self.response_body_size = lean.histogram(signals.HTTP_SERVER_RESPONSE_BODY_SIZE, "By", "HTTP response body size")
        self.breakdown_time = lean.counter(signals.REQUEST_BREAKDOWN_TIME, "s", "Request time by component")
        self.db_queries = lean.histogram(signals.REQUEST_DB_QUERIES, "{query}", "DB queries per request")
        # flags fire on every request of an app with the anti-pattern: lean too
        self.calls_in_transaction = AttributesCounter(
            lean.counter(signals.HTTP_CLIENT_CALLS_IN_TRANSACTION, "{call}", "Outbound HTTP calls made while a DB connection is held")
        )
        self.calls_without_timeout = AttributesCounter(
            lean.counter(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, "{call}", "Outbound HTTP calls without a timeout")
        )
        self.retries = AttributesCounter(lean.counter(signals.HTTP_CLIENT_RETRIES, "{call}", "Outbound HTTP calls that are retries"))
        self.repeated_reads = AttributesCounter(lean.counter(signals.DB_REPEATED_READS, "{query}", "Identical reads repeated within the window"))
        self.dropped_spans = meter.create_counter(signals.AGENT_DROPPED_SPANS, unit="{span}", description="Spans the agent could not buffer or export")
        self.exported_traces = AttributesCounter(lean.counter(signals.AGENT_EXPORTED_TRACES, "{trace}", "Traces kept and queued for export, by reason"))
        self._statements: dict[str, str] = {}
        self._db_values: dict = {}

    # ------------------------------------------------------------ every span
    def record_span(self, span) -> tuple[str | None, str | None]:
        """Record the span's latency histogram; return ``(category, http host)``."""
        kind = span.kind
        attributes = plain_attributes(span)
        get = attributes.get
        seconds = (span.end_time - span.start_time) / 1e9
        if kind is _CLIENT:
            system = get("db.system.name") or get("db.system")
            if system is not None:
                raw = get("db.query.text") or get("db.statement")
                if raw:
                    values = self._db_values.get(raw) if type(raw) is str else None  # (system, normalized statement)
                    if values is None or values[0] != system:
                        values = (system, self._statement(raw))
                        if type(raw) is str and len(self._db_values) < MAX_STATEMENTS:
                            self._db_values[raw] = values
                    self.db_duration.record(seconds, values, K_DB)
                    return "db", None
                if span.name != "connect":  # a connection checkout (pool wait + open) is the pool probe's, not a query
                    self.db_duration.record(seconds, (system, span.name), K_DB)
                return "db", span.name
            method = get("http.request.method") or get("http.method")
            if method is not None:
                host = str(get("server.address") or get("net.peer.name") or get("http.host") or "unknown")
                status = get("http.response.status_code") or get("http.status_code")
                if span.status.status_code is _ERROR:
                    self.client_duration.record(seconds, (host, method, status, get("error.type") or str(status or "error")), K_CLIENT)
                else:
                    self.client_duration.record(seconds, (host, method, status), K_CLIENT_OK)
                return "http", host
            return None, None
        if kind is _SERVER:
            route = route_of_attributes(attributes, span.name)
            method = get("http.request.method") or get("http.method") or "_OTHER"
            status = get("http.response.status_code") or get("http.status_code")
            if span.status.status_code is _ERROR:
                self.server_duration.record(seconds, (route, method, status, get("error.type") or str(status or "error")), K_SERVER)
            else:
                self.server_duration.record(seconds, (route, method, status), K_SERVER_OK)
            length = _header_value(attributes, CONTENT_LENGTH_KEYS)
            if length is not None:
                self._record_body_size(length, _header_value(attributes, CONTENT_ENCODING_KEYS), route)
            return None, None
        if kind is _PRODUCER or kind is _CONSUMER:
            system = get(MESSAGING_SYSTEM_KEY)
            if system is None:
                return None, None
            operation = get("messaging.operation.type") or get("messaging.operation") or ("send" if kind is _PRODUCER else "process")
            destination = get("messaging.destination.name") or get("messaging.destination") or "unknown"
            if kind is _CONSUMER and operation == "process":
                self.messaging_process_duration.record(seconds, (system, destination, operation), K_MESSAGING)
            else:
                self.messaging_duration.record(seconds, (system, destination, operation), K_MESSAGING)
            return ("kafka" if kind is _PRODUCER else None), None
        return None, None

    def record_leaves(self, leaves) -> None:
        """The latency histogram of each leaf (a SQL statement recorded into its request's
        record, ``RequestContext.leaves``), as :meth:`record_span` records its span."""
        record = self.db_duration.record
        for start, end, template, _parent, _status, _tracer in leaves:
            values = template.values
            if values is None:
                values = template.values = self._leaf_values(template)
            if values:
                record((end - start) / 1e9, values, K_DB)

    def _leaf_values(self, template) -> tuple:
        """``db.client.operation.duration``'s attribute values for a leaf's template (``()``: none)."""
        get = template.attributes.get
        system = get("db.system.name") or get("db.system")
        if system is None:
            return ()
        raw = get("db.query.text") or get("db.statement")
        if raw:
            return (system, self._statement(raw))
        return () if template.name == "connect" else (system, template.name)

    def _statement(self, raw) -> str:
        if not raw:
            return "unknown"
        raw = str(raw)
        statement = self._statements.get(raw)
        if statement is None:
            if len(self._statements) >= MAX_STATEMENTS:
                return "other"
            statement = self._statements[raw] = normalize_sql(raw)
        return statement

    def _record_body_size(self, length, encoding, route: str) -> None:
        try:
            size = int(length)
        except (TypeError, ValueError):
            return
        compressed = bool(encoding) and str(encoding).lower() != "identity"
        self.response_body_size.record(size, (route, compressed), K_BODY)

    # ------------------------------------------------------------ every request
    def record_request(self, route: str, breakdown: Breakdown, slow: bool) -> None:
        self.breakdown_time.add_each([(seconds, (route, component, slow)) for component, seconds in breakdown.components.items() if seconds > 0.0], K_BREAKDOWN)
        self.db_queries.record(breakdown.db_queries, (route,), K_ROUTE)
        for host, count in breakdown.retried_calls.items():
            self.retries.add(count, {signals.ATTR_SERVER_ADDRESS: host, signals.ATTR_HTTP_ROUTE: route})
