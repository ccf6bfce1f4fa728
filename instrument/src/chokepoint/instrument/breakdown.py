"""Per-request time breakdown, computed from one finished local trace.

Usage::

    breakdown = compute_breakdown(root_span, child_spans, request_context)
    breakdown.components      # {"db": 0.012, "pool_wait": 0.4, "http:api.example.com": 0.1, "self": 0.03}
    breakdown.db_queries      # top-level DB operations in the request (N+1 shows here)
    breakdown.retried_calls   # outbound HTTP calls repeated after a failed identical call

Accounting rules:

- ``db``: top-level DB client spans (a psycopg span under a SQLAlchemy span counts once).
- ``http:<host>``: top-level HTTP client spans by ``server.address`` (requests over urllib3
  counts once).
- ``kafka``: producer spans, plus the time spent waiting for produce acknowledgements
  (``kafka_wait`` in the request context, :mod:`chokepoint.instrument.kafka_produce_wait`).
- ``pool_wait`` (and anything else the probes report through
  :func:`chokepoint.instrument.context.record_component_time`, e.g. ``queue``): taken from
  the request context.  A pool checkout that opens a new connection contains that
  connection's ``connect`` span, which is DB time: it is taken out of ``pool_wait``.  An
  HTTP client pool's wait happens inside that call's client span: the probes also report
  it as ``http_pool_wait:<host>``, which is taken out of ``http:<host>``.
- ``self``: the root's duration minus all of the above, never below zero (concurrent
  async calls can overlap).
- ``queue``: waits for a worker inside the request (the anyio thread-pool token, reported
  by the probes as ``queue``), plus the wait before the root span started
  (``X-Request-Start``, :mod:`chokepoint.instrument.queue_time`, reported as
  ``queue_before_span``): that one is outside the root's duration, so it is added to the
  request's total, not taken out of ``self``.

Pure functions of finished spans: tested with hand-built spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from chokepoint.instrument.compat import attributes_dict, sdk_span_attributes
from chokepoint.instrument.context import RequestContext
from chokepoint.semconv.aliases import DB_SYSTEM_KEYS, HTTP_METHOD_KEYS, SERVER_ADDRESS_KEYS
from chokepoint.semconv.signals import ATTR_MESSAGING_SYSTEM as MESSAGING_SYSTEM_KEY

CATEGORY_DB = "db"
CATEGORY_HTTP = "http"
CATEGORY_KAFKA = "kafka"
_CLIENT = SpanKind.CLIENT
_PRODUCER = SpanKind.PRODUCER
_ERROR = StatusCode.ERROR
KAFKA_WAIT = "kafka_wait"  # chokepoint.instrument.kafka_produce_wait
HTTP_POOL_WAIT = "http_pool_wait:"  # + host: a client-pool wait inside that host's HTTP client span (probes.client_pools)
QUEUE = "queue"
QUEUE_BEFORE_SPAN = "queue_before_span"  # request context key: the wait before the root span (chokepoint.instrument.queue_time)
_SPAN_MEASURED = frozenset({"self", CATEGORY_DB, CATEGORY_KAFKA})  # the spans are the source of truth


_EMPTY: Mapping = MappingProxyType({})


def plain_attributes(span) -> Mapping:
    """The span's attributes as a plain dict, for reading only.

    A lean span's ``attributes`` is a dict already.  The SDK's ``ReadableSpan.attributes``
    builds a ``MappingProxyType`` over its ``BoundedAttributes`` on every access, and
    ``BoundedAttributes.get`` raises and catches ``KeyError`` for every missing key: read
    the dict underneath instead.
    """
    if isinstance(span, ReadableSpan):
        attributes = sdk_span_attributes(span)
    else:
        attributes = span.attributes
        if type(attributes) is dict:
            return attributes
    if attributes is None:
        return _EMPTY
    return attributes_dict(attributes)


def first_attribute(attributes: Mapping | None, keys: tuple[str, ...]):
    if attributes:
        for key in keys:
            value = attributes.get(key)
            if value is not None:
                return value
    return None


def span_category(span) -> str | None:
    """``db`` / ``http`` / ``kafka`` for client-side spans, else ``None``."""
    kind = span.kind
    attributes = plain_attributes(span)
    if kind is _CLIENT:
        if first_attribute(attributes, DB_SYSTEM_KEYS) is not None:
            return CATEGORY_DB
        if first_attribute(attributes, HTTP_METHOD_KEYS) is not None:
            return CATEGORY_HTTP
        return None
    if kind is _PRODUCER and attributes and attributes.get(MESSAGING_SYSTEM_KEY) is not None:
        return CATEGORY_KAFKA
    return None


def http_host(span) -> str:
    host = first_attribute(plain_attributes(span), SERVER_ADDRESS_KEYS)
    return str(host) if host else "unknown"


def span_failed(span) -> bool:
    """An ``ERROR`` status, or an HTTP status code of 500 or more."""
    if span.status.status_code is _ERROR:
        return True
    attributes = plain_attributes(span)
    if not attributes:
        return False
    status = attributes.get("http.response.status_code")
    if status is None:
        status = attributes.get("http.status_code")
    return isinstance(status, int) and status >= 500


@dataclass
class Breakdown:
    total_s: float
    components: dict[str, float] = field(default_factory=dict)
    db_queries: int = 0
    retried_calls: dict[str, int] = field(default_factory=dict)  # host -> repeated-after-failure calls


def classify(span) -> tuple:
    """``(span, category, detail)`` as the processor stores it.

    detail: the host for HTTP; for DB ``None`` when the span carries a statement (a
    query), else the operation name (``connect``), which is not counted as a query.
    """
    category = span_category(span)
    if category == CATEGORY_HTTP:
        return span, category, http_host(span)
    if category == CATEGORY_DB and not first_attribute(plain_attributes(span), ("db.query.text", "db.statement")):
        return span, category, span.name
    return span, category, None


def compute_breakdown(root, spans: Iterable = (), request: RequestContext | None = None, *, classified: list | None = None, leaves=None) -> Breakdown:
    """Split ``root``'s duration over the components (module docstring).

    ``classified``: ``(span, category, host)`` entries already computed by the caller;
    otherwise ``spans`` are classified here.  ``leaves``: the request's SQL statements and
    connects recorded as leaves (``RequestContext.leaves``), counted as their spans are.
    """
    total_s = (root.end_time - root.start_time) / 1e9
    if total_s < 0.0:
        total_s = 0.0
    entries = classified if classified is not None else [classify(span) for span in spans]
    # one pass: the categorized entries, their span ids (a span nested under one of the same
    # category is counted by its parent) and whether they are in start order already (the
    # processor's buffer is in end order, which is start order for sequential calls)
    category_of: dict[int, str] = {}
    ordered = []
    previous_start = None
    in_order = True
    for entry in entries:
        category = entry[1]
        if category is not None:
            span = entry[0]
            category_of[span.context.span_id] = category
            start = span.start_time
            if previous_start is not None and start < previous_start:
                in_order = False
            previous_start = start
            ordered.append(entry)
    if not in_order:
        ordered.sort(key=_entry_start)  # stable, as sorted() was
    components: dict[str, float] = {}
    retried_calls: dict[str, int] = {}
    db_queries = 0
    last_failed: dict[tuple, bool] = {}
    connect_s = 0.0  # DB connect spans (no statement) inside the request
    for span, category, host in ordered:
        parent = span.parent
        if parent is not None and category_of.get(parent.span_id) == category:
            continue  # nested under a span of the same kind: counted by its parent
        seconds = (span.end_time - span.start_time) / 1e9
        if seconds < 0.0:
            seconds = 0.0
        if category == CATEGORY_DB:
            name = category
            if host is None:
                db_queries += 1
            else:
                connect_s += seconds
        elif category == CATEGORY_HTTP:
            name = f"http:{host}"
            failed = span_failed(span)
            # a retry: the previous identical call failed.  ``last_failed`` holds the calls seen
            # failing (a call that then succeeds is set back to False); until one fails,
            # nothing can be a retry and no call key is built
            if last_failed or failed:
                attributes = plain_attributes(span)
                call = (host, first_attribute(attributes, HTTP_METHOD_KEYS), attributes.get("url.full") or attributes.get("http.url"), span.name)
                if last_failed.get(call):
                    retried_calls[host] = retried_calls.get(host, 0) + 1
                if failed or call in last_failed:
                    last_failed[call] = failed
        else:
            name = category
        components[name] = components.get(name, 0.0) + seconds
    if leaves:
        db_s = 0.0
        for leaf in leaves:
            if category_of and category_of.get(leaf[3][1]) == CATEGORY_DB:
                continue  # under a DB span of its own: counted by it
            seconds = (leaf[1] - leaf[0]) / 1e9 if leaf[1] > leaf[0] else 0.0
            if leaf[2].query:
                db_queries += 1
            else:
                connect_s += seconds
            db_s += seconds
        components[CATEGORY_DB] = components.get(CATEGORY_DB, 0.0) + db_s
    queue_s = 0.0
    if request is not None:
        for name, seconds in request.component_seconds.items():
            if name == QUEUE_BEFORE_SPAN:
                queue_s = seconds
            elif name == KAFKA_WAIT:  # waiting for produce acks (kafka_produce_wait): Kafka time
                components[CATEGORY_KAFKA] = components.get(CATEGORY_KAFKA, 0.0) + seconds
            elif name.startswith(HTTP_POOL_WAIT):  # already in pool_wait: not the dependency's time
                host = f"http:{name[len(HTTP_POOL_WAIT) :]}"
                if host in components:
                    components[host] = max(components[host] - seconds, 0.0)
            elif name not in _SPAN_MEASURED and not name.startswith("http"):
                if name == "pool_wait" and connect_s > 0.0:
                    if connect_s >= seconds:
                        # SQLAlchemy's ``connect`` span is Engine.connect(): it encloses the checkout,
                        # so the wait is inside it — pool time, not DB time
                        components[CATEGORY_DB] = max(components.get(CATEGORY_DB, 0.0) - seconds, 0.0)
                    else:  # a connection opened during the checkout: its connect span is DB time
                        seconds = max(seconds - connect_s, 0.0)
                components[name] = components.get(name, 0.0) + seconds
    accounted = sum(components.values())
    components["self"] = max(total_s - accounted, 0.0)
    if queue_s > 0.0:
        components[QUEUE] = components.get(QUEUE, 0.0) + queue_s
        total_s += queue_s
    return Breakdown(total_s, components, db_queries, retried_calls)


def _entry_start(entry) -> int:
    return entry[0].start_time
