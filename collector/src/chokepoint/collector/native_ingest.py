"""The native span ingest core (``collector/native``, Rust through PyO3) behind ``SpanIngestor``.

Usage (``SpanIngestor.consume_traces`` calls it first; ``None`` means "take the Python path")::

    result = native_ingest.consume_traces(span_ingestor, request, protocol)
    native_ingest.status()      # {"native_ingest": "on"} or why it is off, for /health

What it does: the request's protobuf bytes (those the receiver decoded, ``otlp_json.take_body``;
else re-encoded) go to the core in one call, which decodes only the
fields the span walk reads (ids, times, kind, status, name and the ``semconv.SPAN_KEYS``
attributes), groups spans by trace, and does the walk of ``ingest_spans`` for every trace:
route and dependency latencies (nested outbound spans counted once, metric-authoritative
services skipped) added into sketch bins with ``sketch.py``'s index mapping and
``Sketch.add_many``'s arithmetic in the same order, breakdown sums per component, and which
traces need a decision.  Python gets back one row per route, dependency and breakdown key,
and the spans of only those traces it still decides on (agent-sampled traces, errors, roots
over the route's p99, children without their root, traces already kept), which it decides
on exactly as ``ingest_spans`` does.  Classification is Python's own ``_classify``, called
once per new combination of kind, status, name and classification attributes (the core
caches up to 20,000); high-cardinality inputs (raw URL paths, unnormalized SQL) cost a
Python call per new value.  Store contents are identical to the Python path's
(``tests/collector/test_native_ingest.py`` feeds both the same payloads).

The Python path takes a request when
- ``CHOKEPOINT_NATIVE_INGEST=0`` (default ``1``: on where the core is built), or the core is
  not built for this platform (``make native``; logged once, and ``/health`` says so);
- a trace of the request has spans waiting in the pending buffer (children exported before
  their root) and a stash of this request could evict pending spans (the buffer is near
  ``max_pending_spans`` or holds spans past ``pending_ttl_s``): the join's outcome then
  depends on the order of the walk, which the Python path keeps;
- a span attribute the walk reads is an array or key-value list, or ``service.name`` is not a
  string or an integer;
- the core raised (logged once per reason; the Python path then decides on the request).
Each case is counted in ``status()["native_ingest_fallbacks"]``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref

from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector import ingest_spans as spans_mod
from chokepoint.collector import semconv as sc
from chokepoint.collector.otlp_json import take_body
from chokepoint.collector.otlp_values import IngestResult
from chokepoint.collector.sketch import Sketch
from chokepoint.semconv import signals as sig

log = logging.getLogger(__name__)

ENV_SWITCH = "CHOKEPOINT_NATIVE_INGEST"
KEEP_KEY = sig.ATTR_KEEP_REASON
WANTED_KEYS = sorted(sc.SPAN_KEYS)
# the keys _classify reads (everything the walk reads but the keep reason and error.type)
CLASS_KEYS = sorted(sc.SPAN_KEYS - {sig.ATTR_KEEP_REASON, sig.ATTR_ERROR_TYPE})

try:
    from chokepoint.collector import _native_ingest as _core_module
except ImportError as exc:  # not built for this platform: the Python path ingests
    _core_module = None
    LOAD_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    LOAD_ERROR = None

enabled = os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")

_local = threading.local()
_lock = threading.Lock()
_logged: set[str] = set()
fallbacks: dict[str, int] = {}
native_requests = 0


def available() -> bool:
    """True when the core is built and switched on."""
    return enabled and _core_module is not None


def status() -> dict:
    """What ``/health`` says about the ingest core: on, or off and why, and the fallback counts."""
    if not enabled:
        state = f"off ({ENV_SWITCH}=0)"
    elif _core_module is None:
        state = f"off (not built: {LOAD_ERROR}; run `make native`)"
    else:
        state = "on"
    with _lock:
        return {"native_ingest": state, "native_ingest_requests": native_requests, "native_ingest_fallbacks": dict(fallbacks)}


def _once(key: str, msg: str, *args) -> None:
    with _lock:
        if key in _logged:
            return
        _logged.add(key)
    log.warning(msg, *args)


def _fallback(reason: str) -> None:
    with _lock:
        fallbacks[reason] = fallbacks.get(reason, 0) + 1


def _classify(kind: int, status: int, name: str, attrs: dict):
    span = trace_pb2.Span(kind=kind, name=name)
    if status == spans_mod.STATUS_ERROR:
        span.status.code = spans_mod.STATUS_ERROR
    return spans_mod._classify(span, attrs)


def _core(ingestor):
    """This thread's core for ``ingestor`` (a core caches classifications; one per thread)."""
    cores = getattr(_local, "cores", None)
    if cores is None:
        cores = _local.cores = weakref.WeakKeyDictionary()
    core = cores.get(ingestor)
    if core is None:
        multiplier = 1.0 / math.log(Sketch(ingestor.store.config.relative_accuracy).gamma)  # Sketch._multiplier
        core = cores[ingestor] = _core_module.Core(multiplier, WANTED_KEYS, KEEP_KEY, CLASS_KEYS)
    return core


def _kept_ids(store):
    """The store's kept-trace ids as a dict when it holds them in one (the core looks ids up in
    it directly instead of calling back per trace), else its ``is_trace_kept``."""
    ids = getattr(getattr(store, "kept", None), "by_id", None)
    return ids if isinstance(ids, dict) else store.is_trace_kept


def _sketch(accuracy: float, bins: dict, count: int, total: float, lo: float, hi: float, zeros: int) -> Sketch:
    s = Sketch(accuracy)
    s.bins = bins
    s.count = count
    s.sum = total
    s.min = lo
    s.max = hi
    s.zero_count = zeros
    return s


def consume_traces(ingestor, request, protocol: str | None) -> IngestResult | None:
    """Ingest ``request`` through the core; ``None`` when the Python path must take it."""
    global native_requests
    if not enabled:
        return None
    if _core_module is None:
        _once("load", "chokepoint: the native ingest core is not built (%s); spans are ingested by the slower Python path (run `make native`)", LOAD_ERROR)
        return None
    store = ingestor.store
    body = take_body(request) or request.SerializeToString()
    pending = ingestor._pending
    room, fresh = 0, True
    if pending:
        # joined in the core only when no stash of this request can evict pending spans
        with ingestor._pending_lock:
            if pending:
                room = ingestor.max_pending_spans - ingestor._pending_spans
                fresh = next(iter(pending.values()))[0] >= store.clock() - ingestor.pending_ttl_s
    try:
        out = _core(ingestor).consume(
            body, _classify, store.metric_authoritative, _kept_ids(store), store.route_quantile_s, pending, ingestor._take_pending, room, fresh
        )
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException, a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        _once(f"raise:{type(exc).__name__}", "chokepoint: the native ingest core failed (%r); the Python path takes such requests", exc)
        _fallback(f"core raised {type(exc).__name__}")
        return None
    if isinstance(out, str):
        _fallback(out)
        return None
    accepted, rejected, rejected_names, routes, deps, breakdowns, decisions = out
    view = memoryview(body)
    from_string = trace_pb2.Span.FromString
    p99s: dict = {}
    for trace_id, rows, earlier in decisions:
        recs = [(svc, from_string(view[off : off + n]), attrs, dur, sampled, cls) for svc, off, n, attrs, dur, sampled, cls in rows]
        _decide(ingestor, trace_id, recs, earlier, p99s)
    accuracy = store.config.relative_accuracy
    for svc, route, bins, count, total, lo, hi, zeros, errors in routes:
        store.merge_requests(svc, route, _sketch(accuracy, bins, count, total, lo, hi, zeros), errors)
    for svc, kind, target, bins, count, total, lo, hi, zeros, errors in deps:
        store.merge_dependency(svc, kind, target, _sketch(accuracy, bins, count, total, lo, hi, zeros), errors)
    for svc, route, components, n in breakdowns:
        store.add_breakdown(svc, route, components, slow=False, requests=n)
    proto = protocol or ingestor.protocol
    store.count_ingested(proto, spans=accepted)
    if rejected:
        store.count_rejected(proto, "invalid_span", rejected)
    with _lock:
        native_requests += 1
    errors = [f"span {name!r}: end before start or bad trace/span id" for name in rejected_names]
    return IngestResult(accepted, rejected, "; ".join(errors))


def _decide(ingestor, trace_id: bytes, recs: list, earlier: list | None, p99s: dict) -> None:
    """The kept-trace decision of ``SpanIngestor.consume_traces`` for one trace; ``earlier``: the
    trace's records the core took from the pending buffer (they join after the keep reason)."""
    keep_reason = None
    for r in recs:
        kr = r[2].get(KEEP_KEY)
        if kr:
            keep_reason = str(kr)
            break
    sampled = keep_reason is not None or recs[0][4]
    if earlier:
        recs = earlier + recs
    ingestor._keep_decision(trace_id, recs, spans_mod._local_root(recs), keep_reason, sampled, p99s)
