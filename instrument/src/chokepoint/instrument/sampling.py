"""Keep-the-slow-traces sampling: buffer each local trace, export it only if it matters.

Usage (the agent wires this; tests build it directly)::

    processor = KeepSlowTracesProcessor(config, instruments, exporter)
    tracer_provider.add_span_processor(processor)

Every span is recorded (the sampler is always-on, so context propagates with the
sampled flag), but nothing is exported on the request path:

1. ``on_start`` of a *local root* (no parent, or a remote parent) opens a buffer for its
   trace and, for a server span, a :class:`~chokepoint.instrument.context.RequestContext`.
   A client HTTP span that starts while the request holds a DB connection is counted
   (``chokepoint.http.client.calls_in_transaction``).
2. ``on_end`` of any span records its latency histogram and appends it to the buffer.
   The agent's spans are lean (:mod:`chokepoint.instrument.lean_spans`): the span object
   itself is buffered, read as it is, and copied into an SDK ``ReadableSpan`` only if its
   trace is kept (:func:`sanitized_copy`, on the export thread).  With
   ``CHOKEPOINT_SPANS=sdk`` the processor receives the SDK's ``ReadableSpan`` copies.
   SQL statements inside a request are not spans at all until then: each is a tuple in
   the request's record (``RequestContext.leaves``, see ``lean_spans.leaf_request``),
   recorded into the latency histogram and the breakdown when the request ends and made a
   span (``LeafSpan``, with its own span id) only if the trace is kept.
3. ``on_end`` of the local root records the queue time of a server span that carries
   ``X-Request-Start``/``X-Queue-Start`` (:mod:`chokepoint.instrument.queue_time`),
   computes the breakdown (every request) and decides:
   keep if errored (``error``), slower than the route's rolling percentile or the floor
   (``slow``), or randomly sampled (``random``, ``CHOKEPOINT_TRACE_SAMPLE_RATE``).
   Kept traces go to a bounded queue; a daemon thread sanitizes and exports them,
   gathering what arrives within ``CHOKEPOINT_EXPORT_DELAY_MS`` (1 s) of the first kept
   trace into one OTLP request (an export costs far more than the spans it carries:
   HTTP session, proxy look-up, encoding), or sooner once ``batch_spans`` are queued.

Bounded everywhere: open traces, spans per trace and the export queue; every overflow or
failed export is counted in ``chokepoint.agent.dropped_spans`` by ``chokepoint.drop_reason``
(``too_many_open_traces``, ``trace_too_large``, ``queue_full``, ``export_failed``,
``root_never_ended`` — buffers older than 5 minutes are evicted when the table is full).
When the sidecar is down, exports fail in the background thread (at most one batch in
flight, then a back-off) and the request path never waits.  No method raises.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from chokepoint.instrument import context, signals
from chokepoint.instrument.breakdown import DB_SYSTEM_KEYS, HTTP_METHOD_KEYS, QUEUE_BEFORE_SPAN, compute_breakdown, plain_attributes, span_failed
from chokepoint.instrument.compat import SUPPRESS_INSTRUMENTATION_KEY
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.instruments import K_ROUTE, AgentInstruments, route_of
from chokepoint.instrument.lean_spans import LeafSpan
from chokepoint.instrument.queue_time import REQUEST_START_KEYS, queue_seconds
from chokepoint.instrument.sanitize import sanitize_attributes

_log = logging.getLogger(__name__)

KEEP_ERROR = "error"
KEEP_SLOW = "slow"
KEEP_RANDOM = "random"

DROP_TOO_MANY_TRACES = "too_many_open_traces"
DROP_TRACE_TOO_LARGE = "trace_too_large"
DROP_QUEUE_FULL = "queue_full"
DROP_EXPORT_FAILED = "export_failed"
DROP_STALE = "root_never_ended"
STALE_TRACE_S = 300.0  # a buffer whose root has not ended after this is evicted when the table is full

_CLIENT = SpanKind.CLIENT

MAX_ROUTES = 1000
WINDOW = 256  # recent durations kept per route
RECOMPUTE_EVERY = 32  # recompute a route's threshold every N samples


class _RouteWindow:
    __slots__ = ("count", "index", "samples", "threshold_s")

    def __init__(self):
        self.samples: list[float] = []
        self.index = 0
        self.count = 0
        self.threshold_s = float("inf")


class SlowTraceDecider:
    """Is this duration slow for its route?  Rolling percentile per route plus a floor."""

    def __init__(self, percentile: float = 95.0, floor_s: float = 1.0, min_samples: int = 50):
        self.percentile = percentile
        self.floor_s = floor_s
        self.min_samples = min_samples
        self._routes: dict[str, _RouteWindow] = {}

    def threshold_s(self, route: str) -> float:
        window = self._routes.get(route)
        return min(self.floor_s, window.threshold_s) if window is not None else self.floor_s

    def observe(self, route: str, duration_s: float) -> bool:
        """Record ``duration_s`` for ``route``; ``True`` if it is slow (judged before it is added)."""
        window = self._routes.get(route)
        if window is None:
            if len(self._routes) >= MAX_ROUTES:
                route = "other"
                window = self._routes.get(route)
            if window is None:
                window = self._routes[route] = _RouteWindow()
        slow = duration_s >= self.floor_s or duration_s > window.threshold_s
        if len(window.samples) < WINDOW:
            window.samples.append(duration_s)
        else:
            window.samples[window.index] = duration_s
            window.index = (window.index + 1) % WINDOW
        window.count += 1
        if (window.count >= self.min_samples and window.count % RECOMPUTE_EVERY == 0) or window.count == self.min_samples:
            ordered = sorted(window.samples)
            rank = min(len(ordered) - 1, max(0, int(len(ordered) * self.percentile / 100.0 + 0.5) - 1))
            window.threshold_s = ordered[rank]
        return slow


def sanitized_copy(span, header_allowlist=frozenset()) -> ReadableSpan:
    """An SDK ``ReadableSpan`` copy of ``span`` (lean or SDK) safe to export (see
    :mod:`chokepoint.instrument.sanitize`).

    A lean span's attribute values were cleaned as the SDK does when they were set, and its
    events and links are the SDK's objects, so the copy encodes as an SDK span would.
    """
    attributes = span.attributes
    if type(attributes) is dict:  # a lean span's own dict: copied in one step (GIL-atomic) before reading
        attributes = attributes.copy()
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=sanitize_attributes(attributes, header_allowlist),
        events=tuple(span.events),
        links=tuple(span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class TraceExportQueue:
    """Bounded queue of kept spans, exported by one daemon thread.  ``put`` never blocks."""

    def __init__(self, exporter: SpanExporter, instruments: AgentInstruments, max_spans: int, header_allowlist=frozenset(), delay_s: float = 0.0):
        self.exporter = exporter
        self.instruments = instruments
        self.max_spans = max_spans
        self.header_allowlist = header_allowlist
        self.delay_s = delay_s
        self.batch_spans = 512
        self.backoff_max_s = 5.0
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()  # export now: a full batch, a flush or shutdown
        self._idle = threading.Event()
        self._idle.set()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chokepoint-trace-export", daemon=True)
            self._thread.start()
            if hasattr(os, "register_at_fork"):
                weak_reinit = weakref.WeakMethod(self._after_fork_in_child)
                os.register_at_fork(after_in_child=lambda: (reinit := weak_reinit()) and reinit())

    def _after_fork_in_child(self) -> None:
        """A forked worker (gunicorn, multiprocessing) has no export thread: start its own."""
        self._queue = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="chokepoint-trace-export", daemon=True)
        self._thread.start()

    def put(self, spans: list[ReadableSpan]) -> bool:
        if self._stopped or len(self._queue) + len(spans) > self.max_spans:
            self.instruments.dropped_spans.add(len(spans), {signals.ATTR_DROP_REASON: DROP_QUEUE_FULL})
            return False
        self._idle.clear()
        self._queue.extend(spans)
        if len(self._queue) >= self.batch_spans:
            self._hurry.set()
        self._wake.set()
        return True

    def _take_batch(self) -> list[ReadableSpan]:
        batch = []
        queue = self._queue
        while queue and len(batch) < self.batch_spans:
            batch.append(queue.popleft())
        return batch

    def export_pending(self) -> None:
        """Export everything queued now (the daemon thread's loop body; also used by flush)."""
        with self._lock:
            while True:
                batch = self._take_batch()
                if not batch:
                    return
                if not self._export(batch):
                    return

    def _export(self, batch: list[ReadableSpan]) -> bool:
        # The exporter's own HTTP request must not be traced (it would feed itself).
        token = otel_context.attach(otel_context.set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            clean = [sanitized_copy(span, self.header_allowlist) for span in batch]
            ok = self.exporter.export(clean) is SpanExportResult.SUCCESS
        except Exception:
            _log.debug("chokepoint: span export raised", exc_info=True)
            ok = False
        finally:
            otel_context.detach(token)
        if not ok:
            self.instruments.dropped_spans.add(len(batch), {signals.ATTR_DROP_REASON: DROP_EXPORT_FAILED})
        return ok

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stopped:
            self._wake.wait(timeout=1.0)
            if self.delay_s > 0.0 and self._queue:
                self._hurry.wait(self.delay_s)  # let more kept traces join this export
            self._hurry.clear()
            self._wake.clear()
            if backoff_s:
                time.sleep(backoff_s)
            with self._lock:
                failed = False
                while not failed:
                    batch = self._take_batch()
                    if not batch:
                        break
                    failed = not self._export(batch)
            backoff_s = min(max(backoff_s * 2, 0.5), self.backoff_max_s) if failed else 0.0
            if not self._queue:
                self._idle.set()

    def flush(self, timeout_s: float = 5.0) -> bool:
        if self._thread is None or not self._thread.is_alive():
            self.export_pending()
            return not self._queue
        self._hurry.set()
        self._wake.set()
        return self._idle.wait(timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stopped = True
        self._hurry.set()
        self._wake.set()
        dropped = len(self._queue)
        if dropped:
            self._queue.clear()
            self.instruments.dropped_spans.add(dropped, {signals.ATTR_DROP_REASON: DROP_EXPORT_FAILED})
        try:
            self.exporter.shutdown()
        except Exception:
            _log.debug("chokepoint: exporter shutdown raised", exc_info=True)


class _OpenTrace:
    __slots__ = ("opened_s", "request", "root_span_id", "spans", "token")

    def __init__(self, root_span_id: int):
        self.root_span_id = root_span_id
        self.opened_s = time.monotonic()
        self.spans: list[tuple] = []  # (span, category, http host)
        self.token = None
        self.request: context.RequestContext | None = None


class KeepSlowTracesProcessor(SpanProcessor):
    """See the module docstring."""

    lean_spans_ok = True  # on_start/on_end take a LeanSpan as well (chokepoint.instrument.lean_spans)

    def __init__(self, config: AgentConfig, instruments: AgentInstruments, exporter: SpanExporter, *, rng=None):
        self.config = config
        self.instruments = instruments
        self.decider = SlowTraceDecider(config.slow_percentile, config.slow_floor_ms / 1000.0, config.slow_min_samples)
        self.queue = TraceExportQueue(exporter, instruments, config.export_queue_spans, config.header_allowlist, config.export_delay_ms / 1000.0)
        self._open: dict[int, _OpenTrace] = {}
        self._random = (rng or random.Random()).random
        self._sample_rate = config.trace_sample_rate
        self._max_spans = config.max_spans_per_trace
        self.queue_wait = instruments.lean.histogram(signals.SERVER_QUEUE_WAIT_TIME, "s", "Time from X-Request-Start to the server span's start")
        self.queue_rejected = instruments.lean.counter(signals.SERVER_QUEUE_START_REJECTED, "{request}", "X-Request-Start values not used as a queue time")
        self.queue.start()
        if hasattr(os, "register_at_fork"):
            weak_self = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (me := weak_self()) is not None and me._open.clear())

    # ------------------------------------------------------------ SpanProcessor
    def on_start(self, span, parent_context=None) -> None:
        try:
            parent = span.parent
            if parent is None or parent.is_remote:
                self._open_trace(span)
            elif span.kind is _CLIENT and context.db_connections_held() > 0 and _is_http_client(span):
                request = context.current()
                attrs = {signals.ATTR_SERVER_ADDRESS: _start_host(span)}
                if request is not None:
                    attrs[signals.ATTR_HTTP_ROUTE] = request.route
                self.instruments.calls_in_transaction.add(1, attrs)
        except Exception:
            _log.debug("chokepoint: on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            category, host = self.instruments.record_span(span)
            span_context = span.context
            trace = self._open.get(span_context.trace_id)
            if trace is None:
                return
            if span_context.span_id == trace.root_span_id:
                del self._open[span_context.trace_id]
                self._close_trace(span, trace)
            elif len(trace.spans) < self._max_spans:
                trace.spans.append((span, category, host))
            else:
                self.instruments.dropped_spans.add(1, {signals.ATTR_DROP_REASON: DROP_TRACE_TOO_LARGE})
        except Exception:
            _log.debug("chokepoint: on_end failed", exc_info=True)

    def shutdown(self) -> None:
        self.queue.shutdown(self.config.export_timeout_s)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.flush(timeout_millis / 1000.0)

    # ------------------------------------------------------------ internals
    def _open_trace(self, span) -> None:
        trace_id = span.context.trace_id
        if trace_id in self._open:
            return  # a second local root inside an open trace: its spans join that buffer
        if len(self._open) >= self.config.max_open_traces and not self._evict_stale():
            self.instruments.dropped_spans.add(1, {signals.ATTR_DROP_REASON: DROP_TOO_MANY_TRACES})
            return
        trace = _OpenTrace(span.context.span_id)
        if span.kind is SpanKind.SERVER:
            trace.token = context.start_request(route_of(span))
            request = trace.request = context.current()
            if request is not None:
                request.trace_id = trace_id
                request.leaves = []
                request.max_leaves = self._max_spans
        self._open[trace_id] = trace

    def _evict_stale(self) -> bool:
        """Forget buffers whose root never ended (e.g. an abandoned stream); True if any."""
        cutoff = time.monotonic() - STALE_TRACE_S
        stale = [trace_id for trace_id, trace in list(self._open.items()) if trace.opened_s < cutoff]
        for trace_id in stale:
            trace = self._open.pop(trace_id, None)
            if trace is not None:
                leaves = trace.request.leaves if trace.request is not None else None
                self.instruments.dropped_spans.add(len(trace.spans) + len(leaves or ()) + 1, {signals.ATTR_DROP_REASON: DROP_STALE})
        return bool(stale)

    def _close_trace(self, root: ReadableSpan, trace: _OpenTrace) -> None:
        if trace.token is not None:
            try:  # noqa: SIM105 (contextlib.suppress: three more Python calls per request)
                context.end_request(trace.token)
            except ValueError:  # the root ended in another context (copied by a task group)
                pass
        route = route_of(root)
        request = trace.request
        leaves = None
        if request is not None:
            request.route = route
            leaves = request.leaves
            request.leaves = None  # a statement still running in another thread makes its own span
            if leaves:
                self.instruments.record_leaves(leaves)
        duration_s = max((root.end_time - root.start_time) / 1e9, 0.0)
        slow = self.decider.observe(route, duration_s)
        if root.kind is SpanKind.SERVER:
            get = plain_attributes(root).get
            stamp = get(_REQUEST_START)
            if stamp is None:
                stamp = get(_QUEUE_START)
            if stamp is not None and trace.request is not None:
                self._record_queue_time(stamp, root.start_time, route, trace.request)
            breakdown = compute_breakdown(root, request=request, classified=trace.spans, leaves=leaves)
            self.instruments.record_request(route, breakdown, slow)
        failed = span_failed(root)
        if not failed:
            for entry in trace.spans:
                if span_failed(entry[0]):
                    failed = True
                    break
            else:
                failed = leaves is not None and any(leaf[4] is not None for leaf in leaves)
        if failed:
            reason = KEEP_ERROR
        elif slow:
            reason = KEEP_SLOW
        elif self._sample_rate > 0.0 and self._random() < self._sample_rate:
            reason = KEEP_RANDOM
        else:
            return
        spans = [entry[0] for entry in trace.spans]
        if leaves:
            room = self._max_spans - len(spans)
            if len(leaves) > room:
                self.instruments.dropped_spans.add(len(leaves) - max(room, 0), {signals.ATTR_DROP_REASON: DROP_TRACE_TOO_LARGE})
                leaves = leaves[: max(room, 0)]
            spans.extend(LeafSpan(leaf[5], leaf[2], leaf[3], leaf[0], leaf[1], leaf[4]) for leaf in leaves)
            spans.sort(key=_end_time)  # in the order they ended, as spans are buffered
        spans.append(root)
        if self.queue.put(spans):
            self.instruments.exported_traces.add(1, {signals.ATTR_KEEP_REASON: reason})

    def _record_queue_time(self, stamp, start_ns: int, route: str, request: context.RequestContext) -> None:
        waited, rejected = queue_seconds(stamp, start_ns)
        if waited is None:
            self.queue_rejected.add(1, (route, rejected), _K_REJECTED)
            return
        self.queue_wait.record(waited, (route,), K_ROUTE)
        request.component_seconds[QUEUE_BEFORE_SPAN] = waited


_REQUEST_START, _QUEUE_START = REQUEST_START_KEYS
_K_REJECTED = (signals.ATTR_HTTP_ROUTE, signals.ATTR_DROP_REASON)
_DB_SYSTEM, _DB_SYSTEM_OLD = DB_SYSTEM_KEYS
_HTTP_METHOD, _HTTP_METHOD_OLD = HTTP_METHOD_KEYS


def _end_time(span) -> int:
    return span.end_time


def _is_http_client(span) -> bool:
    """``span_category(span) == "http"`` for a client span: an HTTP method and no DB system
    (a statement span, the usual client span while a connection is held, is decided after
    two dict look-ups instead of the category's function calls)."""
    get = plain_attributes(span).get
    return get(_DB_SYSTEM) is None and get(_DB_SYSTEM_OLD) is None and (get(_HTTP_METHOD) is not None or get(_HTTP_METHOD_OLD) is not None)


def _start_host(span) -> str:
    attributes = plain_attributes(span)
    host = attributes.get("server.address") or attributes.get("net.peer.name")
    if host:
        return str(host)
    url = attributes.get("url.full") or attributes.get("http.url")
    if url:
        from urllib.parse import urlsplit

        try:
            return urlsplit(str(url)).hostname or "unknown"
        except ValueError:
            return "unknown"
    return "unknown"
