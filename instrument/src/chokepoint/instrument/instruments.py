"""The agent's own metric instruments, and how a finished span becomes metrics.

Usage::

    instruments = AgentInstruments(meter)
    instruments.record_span(span)                      # every finished span: latency histograms
    instruments.record_request(root, breakdown, slow)  # every finished request: breakdown + flags

All names come from :mod:`chokepoint.instrument.signals`.  Latency histograms are
recorded here from span timings (one clock read, a handful of attributes) instead of
by the upstream instrumentors, whose meters the agent replaces with a no-op provider:
this halves the per-request metric cost and keeps one set of attribute names.

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
    DB_SYSTEM_KEYS,
    HTTP_METHOD_KEYS,
    HTTP_STATUS_KEYS,
    MESSAGING_SYSTEM_KEY,
    Breakdown,
    first_attribute,
    http_host,
)
from chokepoint.instrument.sanitize import normalize_sql, strip_query

MAX_STATEMENTS = 500
ROUTE_KEYS = ("http.route",)
TARGET_KEYS = ("url.path", "http.target")
STATEMENT_KEYS = ("db.query.text", "db.statement")
DESTINATION_KEYS = ("messaging.destination.name", "messaging.destination")
OPERATION_KEYS = ("messaging.operation.type", "messaging.operation")
CONTENT_LENGTH_KEYS = ("http.response.header.content_length", "http.response.header.content-length")
CONTENT_ENCODING_KEYS = ("http.response.header.content_encoding", "http.response.header.content-encoding")
# Server instrumentation captures these two response headers (no values of any other header).
CAPTURED_RESPONSE_HEADERS = "content-length,content-encoding"


def route_of(span) -> str:
    route = first_attribute(span.attributes, ROUTE_KEYS)
    if route:
        return str(route)
    target = first_attribute(span.attributes, TARGET_KEYS)
    return strip_query(str(target)) if target else span.name


def _header_value(attributes, keys):
    value = first_attribute(attributes, keys)
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return value


class AgentInstruments:
    def __init__(self, meter: Meter):
        self.server_duration = meter.create_histogram(signals.HTTP_SERVER_DURATION, unit="s", description="Duration of HTTP server requests")
        self.client_duration = meter.create_histogram(signals.HTTP_CLIENT_DURATION, unit="s", description="Duration of outbound HTTP requests")
        self.db_duration = meter.create_histogram(signals.DB_CLIENT_OPERATION_DURATION, unit="s", description="Duration of DB operations")
        self.messaging_duration = meter.create_histogram(signals.MESSAGING_CLIENT_OPERATION_DURATION, unit="s", description="Duration of messaging operations")
        self.messaging_process_duration = meter.create_histogram(signals.MESSAGING_PROCESS_DURATION, unit="s", description="Duration of processing a message")
        self.response_body_size = meter.create_histogram(signals.HTTP_SERVER_RESPONSE_BODY_SIZE, unit="By", description="HTTP response body size")
        self.breakdown_time = meter.create_counter(signals.REQUEST_BREAKDOWN_TIME, unit="s", description="Request time by component")
        self.db_queries = meter.create_histogram(signals.REQUEST_DB_QUERIES, unit="{query}", description="DB queries per request")
        self.calls_in_transaction = meter.create_counter(
            signals.HTTP_CLIENT_CALLS_IN_TRANSACTION, unit="{call}", description="Outbound HTTP calls made while a DB connection is held"
        )
        self.calls_without_timeout = meter.create_counter(
            signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, unit="{call}", description="Outbound HTTP calls without a timeout"
        )
        self.retries = meter.create_counter(signals.HTTP_CLIENT_RETRIES, unit="{call}", description="Outbound HTTP calls that are retries")
        self.repeated_reads = meter.create_counter(signals.DB_REPEATED_READS, unit="{query}", description="Identical reads repeated within the window")
        self.dropped_spans = meter.create_counter(signals.AGENT_DROPPED_SPANS, unit="{span}", description="Spans the agent could not buffer or export")
        self.exported_traces = meter.create_counter(signals.AGENT_EXPORTED_TRACES, unit="{trace}", description="Traces kept and exported, by reason")
        self._statements: set[str] = set()

    # ------------------------------------------------------------ every span
    def record_span(self, span) -> None:
        kind = span.kind
        attributes = span.attributes or {}
        seconds = max((span.end_time - span.start_time) / 1e9, 0.0)
        if kind is SpanKind.SERVER:
            attrs = {
                signals.ATTR_HTTP_ROUTE: route_of(span),
                signals.ATTR_HTTP_METHOD: first_attribute(attributes, HTTP_METHOD_KEYS) or "_OTHER",
            }
            status = first_attribute(attributes, HTTP_STATUS_KEYS)
            if status is not None:
                attrs[signals.ATTR_HTTP_STATUS] = status
            if span.status.status_code is StatusCode.ERROR:
                attrs[signals.ATTR_ERROR_TYPE] = attributes.get("error.type") or str(status or "error")
            self.server_duration.record(seconds, attrs)
            self._record_body_size(attributes, attrs[signals.ATTR_HTTP_ROUTE])
        elif kind is SpanKind.CLIENT:
            system = first_attribute(attributes, DB_SYSTEM_KEYS)
            if system is not None:
                self.db_duration.record(
                    seconds,
                    {signals.ATTR_DB_SYSTEM: system, signals.ATTR_DB_STATEMENT: self._statement(attributes)},
                )
                return
            method = first_attribute(attributes, HTTP_METHOD_KEYS)
            if method is not None:
                attrs = {signals.ATTR_SERVER_ADDRESS: http_host(span), signals.ATTR_HTTP_METHOD: method}
                status = first_attribute(attributes, HTTP_STATUS_KEYS)
                if status is not None:
                    attrs[signals.ATTR_HTTP_STATUS] = status
                if span.status.status_code is StatusCode.ERROR:
                    attrs[signals.ATTR_ERROR_TYPE] = attributes.get("error.type") or str(status or "error")
                self.client_duration.record(seconds, attrs)
        elif kind is SpanKind.PRODUCER or kind is SpanKind.CONSUMER:
            system = attributes.get(MESSAGING_SYSTEM_KEY)
            if system is None:
                return
            operation = first_attribute(attributes, OPERATION_KEYS) or ("send" if kind is SpanKind.PRODUCER else "process")
            attrs = {
                signals.ATTR_MESSAGING_SYSTEM: system,
                signals.ATTR_MESSAGING_DESTINATION: first_attribute(attributes, DESTINATION_KEYS) or "unknown",
                signals.ATTR_MESSAGING_OPERATION: operation,
            }
            if kind is SpanKind.CONSUMER and operation == "process":
                self.messaging_process_duration.record(seconds, attrs)
            else:
                self.messaging_duration.record(seconds, attrs)

    def _statement(self, attributes) -> str:
        raw = first_attribute(attributes, STATEMENT_KEYS)
        if not raw:
            return "unknown"
        statement = normalize_sql(str(raw))
        if statement not in self._statements:
            if len(self._statements) >= MAX_STATEMENTS:
                return "other"
            self._statements.add(statement)
        return statement

    def _record_body_size(self, attributes, route: str) -> None:
        length = _header_value(attributes, CONTENT_LENGTH_KEYS)
        if length is None:
            return
        try:
            size = int(length)
        except (TypeError, ValueError):
            return
        encoding = _header_value(attributes, CONTENT_ENCODING_KEYS)
        compressed = bool(encoding) and str(encoding).lower() != "identity"
        self.response_body_size.record(size, {signals.ATTR_HTTP_ROUTE: route, signals.ATTR_RESPONSE_COMPRESSED: compressed})

    # ------------------------------------------------------------ every request
    def record_request(self, route: str, breakdown: Breakdown, slow: bool) -> None:
        add = self.breakdown_time.add
        for component, seconds in breakdown.components.items():
            if seconds > 0.0:
                add(seconds, {signals.ATTR_HTTP_ROUTE: route, signals.ATTR_COMPONENT: component, signals.ATTR_SLOW: slow})
        self.db_queries.record(breakdown.db_queries, {signals.ATTR_HTTP_ROUTE: route})
        for host, count in breakdown.retried_calls.items():
            self.retries.add(count, {signals.ATTR_SERVER_ADDRESS: host, signals.ATTR_HTTP_ROUTE: route})
