"""OTLP → store mapping: ``Ingestor.consume_traces`` / ``consume_metrics``.

Usage::

    ingestor = Ingestor(store)
    result = ingestor.consume_traces(ExportTraceServiceRequest.FromString(body))
    result.accepted, result.rejected, result.error_message   # for OTLP partial_success

Spans (only the attributes listed in ``semconv.SPAN_KEYS`` are read, one pass per span)
- SERVER spans → route latency and errors.  Route = the ``http.route`` template, else
  the normalized ``url.path``/``http.target`` (ids folded), else the span name (the
  method is not part of the key: the agent's per-route signals carry ``http.route``
  only).  Error = span status ERROR or HTTP status >= 500.
- CLIENT spans → dependencies: DB when ``db.system(.name)`` is set (target = query
  summary, else normalized statement, else operation), HTTP when an HTTP method or URL
  is set (target = ``server.address``/``net.peer.name``/URL host, ``:port`` when not
  80/443); PRODUCER/CONSUMER spans (and CLIENT spans with ``messaging.system``) → kind
  ``kafka`` (or the messaging system's name) by ``messaging.destination(.name)``.
  Error = status ERROR or HTTP status >= 500.
- An outbound span nested under an outbound span of the same signal (psycopg under
  SQLAlchemy, urllib3 under requests) is counted once, as its parent.
- Breakdown for foreign SDKs: when a trace's local root SERVER span is in the batch, its
  top-level CLIENT/PRODUCER/CONSUMER spans are summed per component (``db``,
  ``http:<target>``, ``kafka``) and ``self`` = root - their sum (>= 0).

Agent-sampled vs foreign traces.  A trace is *agent-sampled* when any span carries
``chokepoint.keep_reason``, or its resource has ``telemetry.distro.name`` starting with
``chokepoint``, or its service sent any ``chokepoint.*`` metric in the last 5 minutes
(our agent does).  The agent exports only the traces it kept, so
- agent-sampled traces are all kept (reason: the span attribute if present, else
  ``error`` when a span failed, ``slow`` when the root is at/above the route's p95, else
  ``random``) and never feed route/dependency latency or the breakdown (they are a
  biased sample; the agent's metrics cover 100 % of requests);
- a foreign trace is kept when its root errored (``error``) or is slower than the
  route's p99 over the last 5 minutes (``slow``, once the route has >= 20 requests).
Spans arriving later for a kept trace are appended.  Spans of a foreign trace whose root
has not arrived yet (the SDK exported them in an earlier batch) wait in a bounded buffer
(``max_pending_spans`` 5000, ``pending_ttl_s`` 30 s, oldest evicted) and join the
trace's breakdown and kept-trace decision when the root comes; their latencies are
aggregated on arrival, never twice.

No double counting (the authority rule): for a service that sent
``http.server.request.duration`` (or ``http.server.duration``) in the last 5 minutes,
SERVER spans do not feed route latency; likewise ``http.client.request.duration`` for
HTTP, ``db.client.operation.duration`` for DB, ``messaging.*.duration`` for Kafka
dependencies, and the ``chokepoint.request.breakdown.time`` counter for the breakdown.
Otherwise (a foreign SDK sending spans only) spans do.

Metrics: the names of ``chokepoint.instrument.signals`` plus semconv names from any SDK
(old generation too: ``http.server.duration`` in ms, ``db.client.connections.*``,
``process.runtime.cpython.*``).  Histograms (explicit and exponential) become sketches in
seconds (unit ``ms``/``us``/``ns`` converted).  Sums: delta temporality is used as is;
cumulative monotonic sums and cumulative histograms are turned into deltas per stream
(resource + metric + point attributes); a new ``start_time_unix_nano`` or a value going
down is a reset (the point counts in full).  The first point of a cumulative stream
counts in full only when its start time is at or after the collector's start (the
stream began while we watched); otherwise it is the baseline.  Non-monotonic sums
(UpDownCounters such as ``db.client.connection.count``) and gauges are latest values.
Client pools carry ``chokepoint.pool.kind`` (``db`` | ``redis`` | ``http``; absent: ``db``),
which becomes the store's pool kind.  ``chokepoint.runtime.gc.cpu_time`` (a counter of
seconds) is stored as the rate ``gc_cpu`` (seconds of GC CPU per second); the accept backlog,
its limit, the accept rate and the loop's busy share and longest stall are latest values
(``accept_backlog``, ``accept_backlog_max``, ``accept_rate``, ``loop_busy``,
``loop_stall_max``); ``chokepoint.server.queue_wait_time`` is a per-route distribution
(``Store.queue_waits``).
A delta histogram point without buckets (count and sum only) adds its count at the
mean value.  Unknown metric names are accepted and ignored.  Malformed points (bucket counts not
matching bounds, negative counts) are rejected and counted, the rest of the request
is kept.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector import semconv as sc
from chokepoint.collector.catalog import POOL_KINDS
from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import Store
from chokepoint.instrument import signals as sig

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT
PRODUCER = trace_pb2.Span.SPAN_KIND_PRODUCER
CONSUMER = trace_pb2.Span.SPAN_KIND_CONSUMER
STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

UNIT_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "": 1.0}


@dataclass
class IngestResult:
    accepted: int
    rejected: int = 0
    error_message: str = ""


def any_value(v):
    """Python value of an OTLP ``AnyValue`` (arrays/kvlists as strings; keys we read are scalars)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "bool_value":
        return v.bool_value
    if which == "double_value":
        return v.double_value
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def resource_service(resource) -> tuple[str, tuple]:
    """(service.name, identity of the resource for per-stream state)."""
    attrs = attributes(resource.attributes)
    svc = attrs.get(sig.ATTR_SERVICE_NAME) or "unknown_service"
    ident = (svc, attrs.get("service.instance.id"), attrs.get("host.name"), attrs.get("process.pid"))
    return str(svc), ident


AGENT = "agent"  # authority signal: the service runs chokepoint's agent (its spans are pre-sampled)
AGENT_DISTRO = "chokepoint"
AGENT_METRIC_PREFIX = "chokepoint."


def _is_agent_resource(resource) -> bool:
    for kv in resource.attributes:
        if kv.key == "telemetry.distro.name":
            return kv.value.string_value.startswith(AGENT_DISTRO)
    return False


def _local_root(recs):
    """The span without a parent; else a SERVER span whose parent is not in the batch (remote parent)."""
    for r in recs:
        if not r[1].parent_span_id:
            return r
    ids = {r[1].span_id for r in recs}
    for r in recs:
        if r[1].kind == SERVER and r[1].parent_span_id not in ids:
            return r
    return None


def _is_http_error(status) -> bool:
    try:
        return int(status) >= 500
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- metric name tables
_ROUTE_LATENCY = {sig.HTTP_SERVER_DURATION: None, "http.server.duration": "ms"}
_DEP_LATENCY = {
    sig.HTTP_CLIENT_DURATION: ("http", None),
    "http.client.duration": ("http", "ms"),
    sig.DB_CLIENT_OPERATION_DURATION: ("db", None),
    "db.client.operation.duration": ("db", None),
    sig.MESSAGING_CLIENT_OPERATION_DURATION: ("kafka", None),
    sig.MESSAGING_PROCESS_DURATION: ("kafka", None),
    "messaging.publish.duration": ("kafka", "ms"),
    "messaging.receive.duration": ("kafka", "ms"),
}
_POOL_GAUGES = {
    sig.DB_POOL_CONNECTION_COUNT: ("db", "state"),
    "db.client.connections.usage": ("db", "state"),
    sig.DB_POOL_CONNECTION_MAX: ("db", "max"),
    "db.client.connections.max": ("db", "max"),
    sig.DB_POOL_PENDING_REQUESTS: ("db", "pending"),
    "db.client.connections.pending_requests": ("db", "pending"),
    sig.WORKER_POOL_BUSY: ("worker", "used"),
    sig.WORKER_POOL_MAX: ("worker", "max"),
    sig.WORKER_POOL_QUEUED: ("worker", "pending"),
    sig.WORKER_POOL_PROCESSES: ("worker", "processes"),
}
_POOL_WAITS = {
    sig.DB_POOL_WAIT_TIME: ("db", None),
    "db.client.connections.wait_time": ("db", "ms"),
    sig.WORKER_POOL_QUEUE_WAIT_TIME: ("worker", None),
}
_POOL_TIMEOUTS = {sig.DB_POOL_TIMEOUTS: "db", "db.client.connections.timeouts": "db"}
_RUNTIME_GAUGES = {
    sig.PROCESS_CPU_UTILIZATION: "cpu",
    "process.runtime.cpython.cpu.utilization": "cpu",
    sig.RUNTIME_CPU_RUN_QUEUE_WAIT: "run_queue_wait",
    sig.PROCESS_MEMORY_USAGE: "rss",
    sig.PROCESS_THREAD_COUNT: "threads",
    "process.runtime.cpython.thread_count": "threads",
    sig.SERVER_ACCEPT_BACKLOG: "accept_backlog",
    sig.SERVER_ACCEPT_BACKLOG_MAX: "accept_backlog_max",
    sig.SERVER_ACCEPT_RATE: "accept_rate",
    sig.RUNTIME_EVENT_LOOP_BUSY: "loop_busy",
    sig.RUNTIME_EVENT_LOOP_STALL_MAX: "loop_stall_max",
}
# runtime counters stored as a rate (per second of the sender's own interval)
_RUNTIME_RATES = {sig.RUNTIME_GC_CPU_TIME: "gc_cpu"}
_CLIENT_POOL_KINDS = tuple(k for k in POOL_KINDS if k != "worker")  # values of chokepoint.pool.kind
_RUNTIME_SKETCHES = {sig.RUNTIME_GC_PAUSE_TIME: "gc_pause", sig.RUNTIME_EVENT_LOOP_LAG: "loop_lag"}
_LAG_GAUGES = {
    sig.KAFKA_CONSUMER_LAG: "lag",
    sig.KAFKA_CONSUMER_TIME_LAG: "time_lag",
    sig.KAFKA_CONSUMER_COMMITTED_OFFSET: "committed",
    sig.KAFKA_CONSUMER_HIGH_WATERMARK: "log_end",
}
# analyzer signal counters: stored as store counters under the OTLP name, keyed by target/route
_SIGNAL_COUNTERS = (
    sig.HTTP_CLIENT_CALLS_IN_TRANSACTION,
    sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT,
    sig.HTTP_CLIENT_RETRIES,
    sig.DB_REPEATED_READS,
    sig.AGENT_DROPPED_SPANS,
    sig.AGENT_EXPORTED_TRACES,
)
# analyzer signal histograms: stored as counters ``<name>.sum`` and ``<name>.count`` (and for
# response sizes ``<name>.uncompressed.sum/.count`` when the agent saw no Content-Encoding)
_SIGNAL_HISTOGRAMS = (sig.REQUEST_DB_QUERIES, sig.HTTP_SERVER_RESPONSE_BODY_SIZE, sig.DB_POOL_USE_TIME, "db.client.connections.use_time")


class _BadPoint(ValueError):
    pass


def _classify(span, attrs: dict) -> tuple[str, str, str, bool] | None:
    """(signal, route-or-target, dependency kind, error) of a span; None if it feeds no aggregate."""
    kind = span.kind
    error = span.status.code == STATUS_ERROR
    if kind == SERVER:
        status = sc.first(attrs, sc.HTTP_STATUS_KEYS)
        if status is not None and _is_http_error(status):
            error = True
        route = sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS), span.name)
        return "server", route, "", error
    if kind in (CLIENT, PRODUCER, CONSUMER):
        msys = sc.first(attrs, sc.MESSAGING_SYSTEM_KEYS)
        if kind != CLIENT or msys is not None:
            dest = sc.first(attrs, sc.MESSAGING_DESTINATION_KEYS) or span.name
            dkind = "kafka" if msys in (None, "kafka") else str(msys)
            return "kafka", str(dest), dkind, error
        if sc.first(attrs, sc.DB_SYSTEM_KEYS) is not None:
            return "db", sc.db_target(attrs), "db", error
        if sc.first(attrs, sc.HTTP_METHOD_KEYS) is not None or sc.first(attrs, sc.URL_FULL_KEYS) is not None:
            status = sc.first(attrs, sc.HTTP_STATUS_KEYS)
            if status is not None and _is_http_error(status):
                error = True
            return "http", sc.http_target(attrs), "http", error
    return None


def _nested_outbound(recs) -> set | tuple:
    """Span ids of outbound spans whose parent is an outbound span of the same signal (a
    psycopg span under a SQLAlchemy span, urllib3 under requests): counted once, as the parent."""
    outbound = {r[1].span_id: r[5][0] for r in recs if r[5] is not None and r[5][0] != "server"}
    if len(outbound) < 2:
        return ()
    return {r[1].span_id for r in recs if r[5] is not None and r[5][0] != "server" and outbound.get(r[1].parent_span_id) == r[5][0]}


def _span_breakdown(root, recs, breakdown_acc: dict, authority: dict, store: Store) -> None:
    """Fold one foreign trace into the batch's breakdown sums (components per route)."""
    svc = root[0]
    auth = authority.get((svc, "breakdown"))
    if auth is None:
        auth = authority[(svc, "breakdown")] = store.metric_authoritative(svc, "breakdown")
    c = root[5]
    if auth or c is None:
        return
    acc = breakdown_acc.get((svc, c[1]))
    if acc is None:
        acc = breakdown_acc[(svc, c[1])] = [{}, 0]
    components = acc[0]
    if len(recs) == 1:  # the root alone: all of it is self time
        components["self"] = components.get("self", 0.0) + max(0.0, root[3])
        acc[1] += 1
        return
    total = 0.0
    nested = _nested_outbound(recs)
    for r in recs:
        rc = r[5]
        if r is root or rc is None or rc[0] == "server" or r[1].span_id in nested:
            continue
        comp = "http:" + rc[1] if rc[0] == "http" else rc[0]
        components[comp] = components.get(comp, 0.0) + r[3]
        total += r[3]
    components["self"] = components.get("self", 0.0) + max(0.0, root[3] - total)
    acc[1] += 1


class Ingestor:
    """Walks OTLP export requests into a ``Store``; see the module docstring."""

    def __init__(self, store: Store, protocol: str = "otlp") -> None:
        self.store = store
        self.protocol = protocol
        self._started_ns = int(store.clock() * 1e9)
        # cumulative → delta state per stream: key -> (start_ns, previous point state)
        self._prev: dict[tuple, tuple[int, object]] = {}
        self._metrics_lock = threading.Lock()
        self.max_streams = 100_000
        # spans of foreign traces whose local root has not arrived yet (exported in an
        # earlier batch than their root): trace id -> (arrival time, records with copied spans)
        self._pending: OrderedDict[bytes, tuple[float, list]] = OrderedDict()
        self._pending_spans = 0
        self._pending_lock = threading.Lock()
        self.max_pending_spans = 5000
        self.pending_ttl_s = 30.0

    def _stash(self, trace_id: bytes, recs: list) -> None:
        copied = []
        for svc, span, attrs, dur, sampled, cls in recs:
            c = trace_pb2.Span()
            c.CopyFrom(span)  # don't pin the whole request's memory
            copied.append((svc, c, attrs, dur, sampled, cls))
        now = self.store.clock()
        with self._pending_lock:
            have = self._pending.get(trace_id)
            if have is None:
                self._pending[trace_id] = (now, copied)
            else:
                have[1].extend(copied)
            self._pending_spans += len(copied)
            while self._pending and (self._pending_spans > self.max_pending_spans or next(iter(self._pending.values()))[0] < now - self.pending_ttl_s):
                _tid, (_t, old) = self._pending.popitem(last=False)
                self._pending_spans -= len(old)

    def _take_pending(self, trace_id: bytes) -> list:
        with self._pending_lock:
            got = self._pending.pop(trace_id, None)
            if got is None:
                return []
            self._pending_spans -= len(got[1])
            return got[1]

    # ================================================================ traces
    def consume_traces(self, request: ExportTraceServiceRequest, protocol: str | None = None) -> IngestResult:
        store = self.store
        accepted = 0
        rejected = 0
        errors: list[str] = []
        wanted = sc.SPAN_KEYS
        classify = _classify
        # per trace: span records (service, span, wanted attributes, duration_s, agent-sampled, _classify())
        traces: dict[bytes, list] = {}
        for rs in request.resource_spans:
            svc, _ident = resource_service(rs.resource)
            sampled = store.metric_authoritative(svc, AGENT) or _is_agent_resource(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    tid = span.trace_id
                    if end < start or len(tid) != 16 or len(span.span_id) != 8:
                        rejected += 1
                        if len(errors) < 3:
                            errors.append(f"span {span.name!r}: end before start or bad trace/span id")
                        continue
                    attrs = {}
                    for kv in span.attributes:
                        k = kv.key
                        if k in wanted:
                            v = kv.value
                            which = v.WhichOneof("value")  # the scalars inline: this loop is the hot path
                            if which == "string_value":
                                attrs[k] = v.string_value
                            elif which == "int_value":
                                attrs[k] = v.int_value
                            else:
                                attrs[k] = any_value(v)
                    rec = (svc, span, attrs, (end - start) / 1e9, sampled, classify(span, attrs))
                    tl = traces.get(tid)
                    if tl is None:
                        traces[tid] = [rec]
                    else:
                        tl.append(rec)
                    accepted += 1

        pending = self._pending
        route_acc: dict[tuple[str, str], list] = {}
        dep_acc: dict[tuple[str, str, str], list] = {}
        breakdown_acc: dict[tuple[str, str], list] = {}
        authority: dict[tuple[str, str], bool] = {}
        p99s: dict[tuple[str, str], float | None] = {}
        keep_key = sig.ATTR_KEEP_REASON
        for trace_id, recs in traces.items():
            keep_reason = None
            for r in recs:
                kr = r[2].get(keep_key)
                if kr:
                    keep_reason = str(kr)
                    break
            if len(recs) == 1:  # _local_root of a one-span trace, inline
                s = recs[0][1]
                root = recs[0] if not s.parent_span_id or (s.kind == SERVER and s.parent_span_id != s.span_id) else None
            else:
                root = _local_root(recs)
            sampled = keep_reason is not None or recs[0][4]
            if not sampled:
                self._aggregate(recs, route_acc, dep_acc, authority)
            if pending and trace_id in pending:
                earlier = self._take_pending(trace_id)
                if earlier:
                    recs = earlier + recs
                    root = _local_root(recs)
            if not sampled and root is not None and root[1].kind == SERVER:
                _span_breakdown(root, recs, breakdown_acc, authority, store)
            tid = trace_id.hex()
            if store.is_trace_kept(tid):
                store.add_spans_to_kept_trace(tid, self._span_dicts(recs))
                continue
            if keep_reason is None:
                if sampled:
                    keep_reason = self._sampled_keep_reason(root, recs)
                elif root is not None:
                    keep_reason = self._foreign_keep_reason(root, p99s)
                else:
                    self._stash(trace_id, recs)  # children before their root: wait for it
                    continue
            if keep_reason is not None:
                store.keep_trace(self._trace_dict(tid, keep_reason, root, recs))

        for (svc, route), (vals, errs) in route_acc.items():
            store.add_requests(svc, route, vals, errs)
        for (svc, kind, target), (vals, errs) in dep_acc.items():
            store.add_dependency_calls(svc, kind, target, vals, errs)
        for (svc, route), (components, n) in breakdown_acc.items():
            store.add_breakdown(svc, route, components, slow=False, requests=n)
        store.count_ingested(protocol or self.protocol, spans=accepted)
        if rejected:
            store.count_rejected(protocol or self.protocol, "invalid_span", rejected)
        return IngestResult(accepted, rejected, "; ".join(errors))

    def _aggregate(self, recs, route_acc, dep_acc, authority) -> None:
        store = self.store
        nested = _nested_outbound(recs) if len(recs) > 2 else ()
        for r in recs:
            c = r[5]
            if c is None or (nested and r[1].span_id in nested):
                continue
            signal, name, dkind, error = c
            svc = r[0]
            auth = authority.get((svc, signal))
            if auth is None:
                auth = authority[(svc, signal)] = store.metric_authoritative(svc, signal)
            if auth:
                continue
            if signal == "server":
                acc = route_acc.get((svc, name))
                if acc is None:
                    acc = route_acc[(svc, name)] = [[], 0]
            else:
                acc = dep_acc.get((svc, dkind, name))
                if acc is None:
                    acc = dep_acc[(svc, dkind, name)] = [[], 0]
            acc[0].append(r[3])
            if error:
                acc[1] += 1

    def _foreign_keep_reason(self, root, p99s: dict) -> str | None:
        """A foreign SDK sends every trace: keep errors and roots slower than the route's p99.

        ``p99s`` caches the route's p99 for one request (the store is written after the walk).
        """
        c = root[5]
        if c is None or c[0] != "server":
            return "error" if root[1].status.code == STATUS_ERROR else None
        if c[3]:
            return "error"
        key = (root[0], c[1])
        if key in p99s:
            p99 = p99s[key]
        else:
            p99 = p99s[key] = self.store.route_quantile_s(root[0], c[1], 0.99)
        if p99 is not None and root[3] > p99:
            return "slow"
        return None

    def _sampled_keep_reason(self, root, recs) -> str:
        """Our agent already sampled the trace: name why (error, slow = at/above the route's p95, else random)."""
        c = root[5] if root is not None else None
        if (c is not None and c[3]) or any(r[1].status.code == STATUS_ERROR for r in recs):
            return "error"
        if c is not None and c[0] == "server":
            p95 = self.store.route_quantile_s(root[0], c[1], 0.95)
            if p95 is not None and root[3] >= p95:
                return "slow"
        return "random"

    def _span_dicts(self, recs) -> list[dict]:
        base = min(r[1].start_time_unix_nano for r in recs)
        out = []
        for svc, span, _attrs, dur, _sampled, _cls in recs:
            out.append(
                {
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": KIND_NAMES.get(span.kind, "unspecified"),
                    "service": svc,
                    "start_offset_ms": round((span.start_time_unix_nano - base) / 1e6, 3),
                    "duration_ms": round(dur * 1000.0, 3),
                    "attributes": attributes(span.attributes),
                    "status": "error" if span.status.code == STATUS_ERROR else ("ok" if span.status.code else "unset"),
                }
            )
        return out

    def _trace_dict(self, tid: str, keep_reason: str, root, recs) -> dict:
        head = root or min(recs, key=lambda x: x[1].start_time_unix_nano)
        c = head[5]
        route = c[1] if c is not None and c[0] == "server" else head[1].name
        error = any(x[1].status.code == STATUS_ERROR for x in recs) or bool(c and c[3])
        return {
            "trace_id": tid,
            "service": head[0],
            "route": route,
            "duration_ms": round(head[3] * 1000.0, 3),
            "error": error,
            "keep_reason": keep_reason,
            "start": head[1].start_time_unix_nano / 1e9,
            "spans": self._span_dicts(recs),
        }

    # ================================================================ metrics
    def consume_metrics(self, request: ExportMetricsServiceRequest, protocol: str | None = None) -> IngestResult:
        # one request at a time: the cumulative→delta state is read-modify-write per stream
        with self._metrics_lock:
            return self._consume_metrics(request, protocol)

    def _consume_metrics(self, request: ExportMetricsServiceRequest, protocol: str | None) -> IngestResult:
        accepted = 0
        rejected = 0
        errors: list[str] = []
        lag: dict[tuple[str, str, int], dict] = {}
        for rm in request.resource_metrics:
            svc, ident = resource_service(rm.resource)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    if which is None:
                        continue
                    if m.name.startswith(AGENT_METRIC_PREFIX):
                        self.store.mark_metric_authority(svc, AGENT)
                    points = getattr(m, which).data_points
                    for p in points:
                        try:
                            self._metric_point(svc, ident, m, which, p, lag)
                            accepted += 1
                        except (_BadPoint, ValueError, OverflowError) as exc:
                            rejected += 1
                            if len(errors) < 3:
                                errors.append(f"{m.name}: {exc}")
        now = self.store.clock()
        for (group, topic, partition), v in lag.items():
            if "committed" in v and "log_end" in v:
                self.store.record_consumer_offsets(
                    group, topic, partition, int(v["committed"]), int(v["log_end"]), now, time_lag_s=v.get("time_lag"), source="agent", service=v.get("service")
                )
            else:
                self.store.record_consumer_lag(group, topic, partition, v.get("lag"), v.get("time_lag"), now, source="agent", service=v.get("service"))
        self.store.count_ingested(protocol or self.protocol, points=accepted)
        if rejected:
            self.store.count_rejected(protocol or self.protocol, "invalid_point", rejected)
        return IngestResult(accepted, rejected, "; ".join(errors))

    # -------------------------------------------------------------- point decoding
    def _number(self, key: tuple, m, which: str, p) -> float | None:
        """Value of a gauge/sum point as the store wants it: latest for gauges/non-monotonic sums, delta for monotonic sums."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        v = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
        if v != v:
            raise _BadPoint("NaN value")
        if which == "gauge":
            return v
        s = m.sum
        if not s.is_monotonic:
            return v
        if s.aggregation_temporality == DELTA:
            return v
        prev = self._prev.get(key)
        self._remember(key, p.start_time_unix_nano, v)
        if prev is None:
            return v if self._counts_in_full(p.start_time_unix_nano) else 0.0
        pstart, pv = prev
        if p.start_time_unix_nano != pstart or v < pv:
            return v
        return v - pv

    def _rate(self, key: tuple, m, p) -> float | None:
        """Per-second rate of a monotonic sum over the sender's interval (delta: the point's own
        start→time; cumulative: since the previous point of the stream)."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        v = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
        if v != v:
            raise _BadPoint("NaN value")
        t, start = p.time_unix_nano, p.start_time_unix_nano
        if m.sum.aggregation_temporality == DELTA:
            return max(0.0, v) / ((t - start) / 1e9) if start and t > start else None
        rkey = ("rate", *key)
        prev = self._prev.get(rkey)
        self._remember(rkey, start, (t, v))
        if prev is None or prev[0] != start or v < prev[1][1] or t <= prev[1][0]:
            return v / ((t - start) / 1e9) if prev is None and self._counts_in_full(start) and t > start else None
        return (v - prev[1][1]) / ((t - prev[1][0]) / 1e9)

    def _remember(self, key: tuple, start_ns: int, state) -> None:
        if key not in self._prev and len(self._prev) >= self.max_streams:
            self.store.count_dropped("streams")
            self._prev.pop(next(iter(self._prev)))
        self._prev[key] = (start_ns, state)

    def _counts_in_full(self, start_ns: int) -> bool:
        return start_ns >= self._started_ns and start_ns > 0

    def _sketch(self, key: tuple, m, which: str, p, unit_override: str | None) -> Sketch | None:
        """A delta sketch (seconds for durations) of a histogram point."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        unit = unit_override if unit_override is not None else m.unit
        factor = UNIT_TO_SECONDS.get(unit, 1.0)
        hist = getattr(m, which)
        temporality = hist.aggregation_temporality
        s = Sketch(self.store.config.relative_accuracy)
        has_min = p.HasField("min")
        has_max = p.HasField("max")
        if which == "histogram":
            bounds = [b * factor for b in p.explicit_bounds]
            counts = list(p.bucket_counts)
            if not counts:
                # a histogram without buckets (count and sum only): every value at the mean
                if p.count <= 0 or temporality == CUMULATIVE:
                    return None
                s.add(p.sum * factor / p.count if p.HasField("sum") else 0.0, count=p.count)
                return s
            if len(counts) != len(bounds) + 1:
                raise _BadPoint(f"{len(counts)} bucket counts for {len(bounds)} bounds")
            if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
                raise _BadPoint("explicit bounds not increasing")
            total = p.sum * factor if p.HasField("sum") else None
            lo = p.min * factor if has_min else None
            hi = p.max * factor if has_max else None
            if temporality == CUMULATIVE:
                prev = self._prev.get(key)
                self._remember(key, p.start_time_unix_nano, (tuple(bounds), counts, total))
                if prev is None:
                    if not self._counts_in_full(p.start_time_unix_nano):
                        return None
                else:
                    pstart, (pbounds, pcounts, ptotal) = prev
                    if pstart == p.start_time_unix_nano and pbounds == tuple(bounds) and all(c >= pc for c, pc in zip(counts, pcounts, strict=False)):
                        counts = [c - pc for c, pc in zip(counts, pcounts, strict=False)]
                        total = total - ptotal if total is not None and ptotal is not None else None
                        lo = hi = None  # min/max of a cumulative point are not the delta's
            s.add_explicit_buckets(bounds, counts, total, lo, hi)
            return s
        # exponential
        scale = p.scale
        offset = p.positive.offset
        counts = list(p.positive.bucket_counts)
        noff = p.negative.offset
        ncounts = list(p.negative.bucket_counts)
        zero = p.zero_count
        total = p.sum if p.HasField("sum") else None
        lo = p.min if has_min else None
        hi = p.max if has_max else None
        if temporality == CUMULATIVE:
            prev = self._prev.get(key)
            self._remember(key, p.start_time_unix_nano, (scale, offset, counts, noff, ncounts, zero, total))
            if prev is None:
                if not self._counts_in_full(p.start_time_unix_nano):
                    return None
            else:
                pstart, pstate = prev
                delta = _exp_delta(pstate, (scale, offset, counts, noff, ncounts, zero, total)) if pstart == p.start_time_unix_nano else None
                if delta is not None:
                    scale, offset, counts, noff, ncounts, zero, total = delta
                    lo = hi = None
        if factor != 1.0:
            total = total * factor if total is not None else None
            lo = lo * factor if lo is not None else None
            hi = hi * factor if hi is not None else None
        s.add_exponential_buckets(scale, offset, counts, zero, total, lo, hi, noff, ncounts, unit_factor=factor)
        return s

    def _metric_point(self, svc: str, ident: tuple, m, which: str, p, lag: dict) -> None:
        name = m.name
        if which in ("summary",):
            return
        attrs = attributes(p.attributes)
        key = (ident, name, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        store = self.store
        is_hist = which in ("histogram", "exponential_histogram")
        if is_hist:
            for c in p.bucket_counts if which == "histogram" else p.positive.bucket_counts:
                if c < 0:
                    raise _BadPoint("negative bucket count")

        if name in _ROUTE_LATENCY and is_hist:
            sk = self._sketch(key, m, which, p, _ROUTE_LATENCY[name])
            store.mark_metric_authority(svc, "server")  # only once a point decoded
            if sk is None or sk.count == 0:
                return
            route = sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS))
            err = _is_http_error(sc.first(attrs, sc.HTTP_STATUS_KEYS)) or bool(attrs.get(sig.ATTR_ERROR_TYPE))
            store.merge_requests(svc, route, sk, sk.count if err else 0)
            return
        if name in _DEP_LATENCY and is_hist:
            dkind, unit = _DEP_LATENCY[name]
            sk = self._sketch(key, m, which, p, unit)
            store.mark_metric_authority(svc, dkind)
            if sk is None or sk.count == 0:
                return
            if dkind == "http":
                target = sc.http_target(attrs)
                err = _is_http_error(sc.first(attrs, sc.HTTP_STATUS_KEYS)) or bool(attrs.get(sig.ATTR_ERROR_TYPE))
            elif dkind == "db":
                target = sc.db_target(attrs)
                err = bool(attrs.get(sig.ATTR_ERROR_TYPE))
            else:
                target = str(sc.first(attrs, sc.MESSAGING_DESTINATION_KEYS) or "unknown")
                msys = sc.first(attrs, sc.MESSAGING_SYSTEM_KEYS)
                dkind = "kafka" if msys in (None, "kafka") else str(msys)
                err = bool(attrs.get(sig.ATTR_ERROR_TYPE))
            store.merge_dependency(svc, dkind, target, sk, sk.count if err else 0)
            return
        if name in _POOL_GAUGES and not is_hist:
            pkind, field = _POOL_GAUGES[name]
            pkind = _pool_kind(pkind, attrs)
            v = self._number(key, m, which, p)
            if v is None:
                return
            pool = str(sc.first(attrs, sc.POOL_NAME_KEYS) or attrs.get(sig.ATTR_WORKER_POOL_KIND) or "default")
            if field == "state":
                state = sc.first(attrs, sc.POOL_STATE_KEYS)
                if state == "used":
                    store.set_pool(svc, pkind, pool, used=v)
                elif state == "idle":
                    store.set_pool(svc, pkind, pool, idle=v)
                return
            store.set_pool(svc, pkind, pool, **{field: v})
            return
        if name in _POOL_WAITS and is_hist:
            pkind, unit = _POOL_WAITS[name]
            pkind = _pool_kind(pkind, attrs)
            sk = self._sketch(key, m, which, p, unit)
            if sk is not None and sk.count:
                pool = str(sc.first(attrs, sc.POOL_NAME_KEYS) or attrs.get(sig.ATTR_WORKER_POOL_KIND) or "default")
                store.merge_pool_wait(svc, pkind, pool, sk)
            return
        if name in _POOL_TIMEOUTS and not is_hist:
            v = self._number(key, m, which, p)
            if v:
                store.add_pool_timeouts(svc, _pool_kind(_POOL_TIMEOUTS[name], attrs), str(sc.first(attrs, sc.POOL_NAME_KEYS) or "default"), v)
            return
        if name == sig.BREAKER_STATE and not is_hist:
            v = self._number(key, m, which, p)
            if v is not None:
                store.set_breaker_state(svc, str(attrs.get(sig.ATTR_BREAKER_NAME) or "default"), int(v))
            return
        if name == sig.BREAKER_TRANSITIONS and not is_hist:
            v = self._number(key, m, which, p)
            if v:
                store.add_breaker_transitions(svc, str(attrs.get(sig.ATTR_BREAKER_NAME) or "default"), str(attrs.get(sig.ATTR_BREAKER_TO) or "unknown"), v)
            return
        if name == sig.BREAKER_CALLS and not is_hist:
            v = self._number(key, m, which, p)
            if v:
                store.add_breaker_calls(svc, str(attrs.get(sig.ATTR_BREAKER_NAME) or "default"), str(attrs.get(sig.ATTR_BREAKER_RESULT) or "unknown"), v)
            return
        if name in _LAG_GAUGES and not is_hist:
            v = self._number(key, m, which, p)
            if v is None:
                return
            group = str(sc.first(attrs, sc.MESSAGING_GROUP_KEYS) or "unknown")
            topic = str(sc.first(attrs, sc.MESSAGING_DESTINATION_KEYS) or "unknown")
            part = sc.first(attrs, sc.MESSAGING_PARTITION_KEYS)
            try:
                partition = int(part) if part is not None else 0
            except (TypeError, ValueError):
                raise _BadPoint(f"partition {part!r} is not an integer") from None
            row = lag.setdefault((group, topic, partition), {})
            row[_LAG_GAUGES[name]] = v
            row["service"] = svc  # the consumer process: its findings are filed under its own service
            return
        if name == sig.AGENT_COVERAGE and not is_hist:
            v = self._number(key, m, which, p)
            if v is not None:
                store.set_coverage(
                    svc,
                    str(attrs.get(sig.ATTR_COVERAGE_LIBRARY) or "unknown"),
                    str(attrs.get(sig.ATTR_COVERAGE_WHAT) or "signals"),
                    v,
                    version=str(attrs.get(sig.ATTR_COVERAGE_VERSION) or ""),
                    try_=str(attrs.get(sig.ATTR_COVERAGE_TRY) or ""),
                    instance=ident,
                )
            return
        if name in _RUNTIME_GAUGES and not is_hist:
            v = self._number(key, m, which, p)
            if v is not None:
                store.set_runtime(svc, **{_RUNTIME_GAUGES[name]: v})
            return
        if name in _RUNTIME_RATES and which == "sum":
            rate = self._rate(key, m, p)
            if rate is not None:
                store.set_runtime(svc, **{_RUNTIME_RATES[name]: rate})
            return
        if name == sig.SERVER_QUEUE_WAIT_TIME and is_hist:
            sk = self._sketch(key, m, which, p, None)
            if sk is not None and sk.count:
                store.merge_queue_wait(svc, sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS)), sk)
            return
        if name == "process.runtime.cpython.memory" and not is_hist:
            if attrs.get("type") == "rss":
                v = self._number(key, m, which, p)
                if v is not None:
                    store.set_runtime(svc, rss=v)
            return
        if name in _RUNTIME_SKETCHES and is_hist:
            sk = self._sketch(key, m, which, p, None)
            if sk is not None and sk.count:
                store.merge_runtime_sketch(svc, _RUNTIME_SKETCHES[name], sk)
            return
        if name == sig.REQUEST_BREAKDOWN_TIME and not is_hist:
            store.mark_metric_authority(svc, "breakdown")
            v = self._number(key, m, which, p)
            if not v:
                return
            route = sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS))
            component = str(attrs.get(sig.ATTR_COMPONENT) or "self")
            slow = attrs.get(sig.ATTR_SLOW) in (True, "true", "True", 1)
            store.add_breakdown(svc, route, {component: v}, slow=slow)
            return
        if name in _SIGNAL_COUNTERS and not is_hist:
            v = self._number(key, m, which, p)
            if v:
                store.add_counter(svc, name, _signal_key(attrs), v)
            return
        if name in _SIGNAL_HISTOGRAMS and is_hist:
            sk = self._sketch(key, m, which, p, None)  # unit: "{query}"/"By" stay, "ms" → s
            if sk is not None and sk.count:
                k = _signal_key(attrs)
                store.add_counter(svc, f"{name}.sum", k, sk.sum)
                store.add_counter(svc, f"{name}.count", k, sk.count)
                if attrs.get(sig.ATTR_RESPONSE_COMPRESSED) in (False, "false", "False"):
                    # response sizes sent without Content-Encoding (for the uncompressed_response finding)
                    store.add_counter(svc, f"{name}.uncompressed.sum", k, sk.sum)
                    store.add_counter(svc, f"{name}.uncompressed.count", k, sk.count)
            return


def _pool_kind(kind: str, attrs: dict) -> str:
    """A client pool's kind from ``chokepoint.pool.kind`` (``db`` | ``redis`` | ``http``); worker pools stay ``worker``."""
    if kind != "db":
        return kind
    given = attrs.get(sig.ATTR_POOL_KIND)
    return given if given in _CLIENT_POOL_KINDS else kind


def _signal_key(attrs: dict) -> str:
    """The label an analyzer signal counter is kept under: dependency target, else route, else ''."""
    if sc.first(attrs, sc.SERVER_ADDRESS_KEYS) is not None or sc.first(attrs, sc.URL_FULL_KEYS) is not None:
        return sc.http_target(attrs)
    route = sc.first(attrs, sc.HTTP_ROUTE_KEYS)
    if route:
        return sc.route_name(route)
    if sc.first(attrs, sc.DB_STATEMENT_KEYS + sc.DB_SUMMARY_KEYS) is not None:
        return sc.db_target(attrs)
    for k in (sig.ATTR_DROP_REASON, sig.ATTR_KEEP_REASON, sig.ATTR_POOL_NAME, sig.ATTR_DB_POOL_NAME):
        if attrs.get(k):
            return str(attrs[k])
    return ""


def _downscale(offset: int, counts: list[int], by: int) -> tuple[int, list[int]]:
    """Merge exponential buckets to a scale ``by`` steps coarser (index >> by)."""
    if by <= 0 or not counts:
        return offset, counts
    new_off = offset >> by
    out: list[int] = []
    for j, c in enumerate(counts):
        idx = ((offset + j) >> by) - new_off
        while len(out) <= idx:
            out.append(0)
        out[idx] += c
    return new_off, out


def _sub_buckets(off_a: int, a: list[int], off_b: int, b: list[int]) -> list[int] | None:
    """a - b aligned at a's offset; None if b has counts outside a or above a (a reset)."""
    out = list(a)
    for j, c in enumerate(b):
        idx = off_b + j - off_a
        if c == 0:
            continue
        if idx < 0 or idx >= len(out) or out[idx] < c:
            return None
        out[idx] -= c
    return out


def _exp_delta(prev: tuple, cur: tuple) -> tuple | None:
    """cur - prev of two cumulative exponential points (scales aligned by downscaling); None on reset."""
    pscale, poff, pcounts, pnoff, pncounts, pzero, ptotal = prev
    scale, off, counts, noff, ncounts, zero, total = cur
    if scale < pscale:
        poff, pcounts = _downscale(poff, pcounts, pscale - scale)
        pnoff, pncounts = _downscale(pnoff, pncounts, pscale - scale)
    elif scale > pscale:
        off, counts = _downscale(off, counts, scale - pscale)
        noff, ncounts = _downscale(noff, ncounts, scale - pscale)
        scale = pscale
    if zero < pzero:
        return None
    pos = _sub_buckets(off, counts, poff, pcounts)
    neg = _sub_buckets(noff, ncounts, pnoff, pncounts)
    if pos is None or neg is None:
        return None
    d_total = total - ptotal if total is not None and ptotal is not None else None
    return scale, off, pos, noff, neg, zero - pzero, d_total
