"""Spans → route and dependency latency, the breakdown, and the kept-trace decision.

Usage (through ``Ingestor``; ``SpanIngestor`` is the trace path alone)::

    spans = SpanIngestor(store)
    result = spans.consume_traces(ExportTraceServiceRequest.FromString(body))

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
Otherwise (a foreign SDK sending spans only) spans do: the metric side
(``ingest_points``) marks the authority, this side reads it.

Configuration (attributes of ``SpanIngestor``): ``max_pending_spans`` (5000) and
``pending_ttl_s`` (30 s) bound the buffer of children waiting for their root.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector import native_ingest
from chokepoint.collector import semconv as sc
from chokepoint.collector.otlp_values import AGENT, AGENT_DISTRO, IngestResult, any_value, attributes, is_http_error, resource_service
from chokepoint.collector.store import Store
from chokepoint.semconv import signals as sig

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT
PRODUCER = trace_pb2.Span.SPAN_KIND_PRODUCER
CONSUMER = trace_pb2.Span.SPAN_KIND_CONSUMER
STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


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


def _classify(span, attrs: dict) -> tuple[str, str, str, bool] | None:
    """(signal, route-or-target, dependency kind, error) of a span; None if it feeds no aggregate."""
    kind = span.kind
    error = span.status.code == STATUS_ERROR
    if kind == SERVER:
        status = sc.first(attrs, sc.HTTP_STATUS_KEYS)
        if status is not None and is_http_error(status):
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
            if status is not None and is_http_error(status):
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


class SpanIngestor:
    """Walks OTLP trace export requests into a ``Store``; see the module docstring."""

    def __init__(self, store: Store, protocol: str = "otlp") -> None:
        self.store = store
        self.protocol = protocol
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

    def consume_traces(self, request: ExportTraceServiceRequest, protocol: str | None = None) -> IngestResult:
        if (done := native_ingest.consume_traces(self, request, protocol)) is not None:
            return done  # the native core took the request (native_ingest.py); else the walk below
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
            self._keep_decision(trace_id, recs, root, keep_reason, sampled, p99s)

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

    def _keep_decision(self, trace_id: bytes, recs: list, root, keep_reason: str | None, sampled: bool, p99s: dict) -> None:
        """One trace's kept-trace decision (the Python walk's and the native core's): join a kept
        trace, keep it (agent-marked, sampled, errored or slower than its route), or stash children
        that arrived before their root."""
        store = self.store
        tid = trace_id.hex()
        if store.is_trace_kept(tid):
            store.add_spans_to_kept_trace(tid, self._span_dicts(recs))
            return
        if keep_reason is None:
            if sampled:
                keep_reason = self._sampled_keep_reason(root, recs)
            elif root is not None:
                keep_reason = self._foreign_keep_reason(root, p99s)
            else:
                self._stash(trace_id, recs)  # children before their root: wait for it
                return
        if keep_reason is not None:
            store.keep_trace(self._trace_dict(tid, keep_reason, root, recs))

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
