"""Metric points → the store: one handler per metric name, in one table (``POINT_HANDLERS``).

Usage (through ``Ingestor``; ``MetricIngestor`` is the metric path alone)::

    points = MetricIngestor(store)
    result = points.consume_metrics(ExportMetricsServiceRequest.FromString(body))

Metrics: the names of ``chokepoint.instrument.signals`` plus semconv names from any SDK
(old generation too: ``http.server.duration`` in ms, ``db.client.connections.*``,
``process.runtime.cpython.*``).  Values are read through ``temporality`` (cumulative →
delta per stream, histograms as sketches in seconds).
Client pools carry ``chokepoint.pool.kind`` (``db`` | ``redis`` | ``http``; absent: ``db``),
which becomes the store's pool kind.  ``chokepoint.runtime.gc.cpu_time`` (a counter of
seconds) is stored as the rate ``gc_cpu`` (seconds of GC CPU per second); the accept backlog,
its limit, the accept rate and the loop's busy share and longest stall are latest values
(``accept_backlog``, ``accept_backlog_max``, ``accept_rate``, ``loop_busy``,
``loop_stall_max``); ``chokepoint.server.queue_wait_time`` is a per-route distribution
(``Store.queue_waits``).
Any ``chokepoint.*`` metric marks its service as running the agent (``AGENT`` authority,
read by ``ingest_spans``); a route or dependency latency histogram, and the breakdown
counter, mark the matching signal as metric-fed.  Kafka lag gauges of one request are
gathered per partition, then recorded once (offsets when both are known, else the lag).

``POINT_HANDLERS[name] = (shape, handler, argument)``: ``shape`` is the point kind the
handler takes (``HISTOGRAM`` explicit or exponential, ``NUMBER`` gauge or sum, ``SUM`` sum
only); a point of another kind under that name is ignored.  Unknown metric names and
summaries are accepted and ignored.  Malformed points (bucket counts not matching bounds,
negative counts, NaN, a non-integer partition) are rejected and counted, the rest of the
request is kept.  One request at a time (the cumulative → delta state is read-modify-write).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from chokepoint.collector import semconv as sc
from chokepoint.collector.catalog import POOL_KINDS
from chokepoint.collector.otlp_values import AGENT, AGENT_METRIC_PREFIX, IngestResult, attributes, is_http_error, resource_service
from chokepoint.collector.store import Store
from chokepoint.collector.temporality import BadPoint, CumulativeToDelta
from chokepoint.semconv import signals as sig

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

HISTOGRAM = "histogram"  # explicit or exponential histogram points
NUMBER = "number"  # gauge or sum points
SUM = "sum"  # sum points only


@dataclass(slots=True)
class Point:
    """One data point being mapped: its service, stream key and decoded attributes."""

    svc: str
    ident: tuple
    metric: object  # metrics_pb2.Metric
    which: str  # the metric's data oneof: gauge, sum, histogram, exponential_histogram
    p: object  # the data point
    attrs: dict
    key: tuple  # the cumulative → delta stream
    lag: dict  # this request's Kafka lag rows: (group, topic, partition) -> fields


class MetricIngestor:
    """Walks OTLP metric export requests into a ``Store``; see the module docstring."""

    def __init__(self, store: Store, protocol: str = "otlp") -> None:
        self.store = store
        self.protocol = protocol
        self.streams = CumulativeToDelta(store)
        self._metrics_lock = threading.Lock()

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
                        except (BadPoint, ValueError, OverflowError) as exc:
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

    def _metric_point(self, svc: str, ident: tuple, m, which: str, p, lag: dict) -> None:
        if which == "summary":
            return
        is_hist = which in ("histogram", "exponential_histogram")
        if is_hist:
            for c in p.bucket_counts if which == "histogram" else p.positive.bucket_counts:
                if c < 0:
                    raise BadPoint("negative bucket count")
        entry = POINT_HANDLERS.get(m.name)
        if entry is None:
            return
        shape, handler, arg = entry
        if not (is_hist if shape == HISTOGRAM else not is_hist if shape == NUMBER else which == "sum"):
            return
        attrs = attributes(p.attributes)
        key = (ident, m.name, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        handler(self, Point(svc, ident, m, which, p, attrs, key, lag), arg)

    # the two decodings every handler uses
    def _sketch(self, pt: Point, unit: str | None):
        return self.streams.sketch(pt.key, pt.metric, pt.which, pt.p, unit)

    def _number(self, pt: Point) -> float | None:
        return self.streams.number(pt.key, pt.metric, pt.which, pt.p)


# ---------------------------------------------------------------- handlers (ingestor, point, table argument)
def _route_latency(ing: MetricIngestor, pt: Point, unit: str | None) -> None:
    sk = ing._sketch(pt, unit)
    ing.store.mark_metric_authority(pt.svc, "server")  # only once a point decoded
    if sk is None or sk.count == 0:
        return
    attrs = pt.attrs
    route = sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS))
    err = is_http_error(sc.first(attrs, sc.HTTP_STATUS_KEYS)) or bool(attrs.get(sig.ATTR_ERROR_TYPE))
    ing.store.merge_requests(pt.svc, route, sk, sk.count if err else 0)


def _dependency_latency(ing: MetricIngestor, pt: Point, arg: tuple[str, str | None]) -> None:
    dkind, unit = arg
    sk = ing._sketch(pt, unit)
    ing.store.mark_metric_authority(pt.svc, dkind)
    if sk is None or sk.count == 0:
        return
    attrs = pt.attrs
    if dkind == "http":
        target = sc.http_target(attrs)
        err = is_http_error(sc.first(attrs, sc.HTTP_STATUS_KEYS)) or bool(attrs.get(sig.ATTR_ERROR_TYPE))
    elif dkind == "db":
        target = sc.db_target(attrs)
        err = bool(attrs.get(sig.ATTR_ERROR_TYPE))
    else:
        target = str(sc.first(attrs, sc.MESSAGING_DESTINATION_KEYS) or "unknown")
        msys = sc.first(attrs, sc.MESSAGING_SYSTEM_KEYS)
        dkind = "kafka" if msys in (None, "kafka") else str(msys)
        err = bool(attrs.get(sig.ATTR_ERROR_TYPE))
    ing.store.merge_dependency(pt.svc, dkind, target, sk, sk.count if err else 0)


def _pool_name(attrs: dict) -> str:
    return str(sc.first(attrs, sc.POOL_NAME_KEYS) or attrs.get(sig.ATTR_WORKER_POOL_KIND) or "default")


def _pool_gauge(ing: MetricIngestor, pt: Point, arg: tuple[str, str]) -> None:
    pkind, field = arg
    pkind = _pool_kind(pkind, pt.attrs)
    v = ing._number(pt)
    if v is None:
        return
    pool = _pool_name(pt.attrs)
    if field == "state":
        state = sc.first(pt.attrs, sc.POOL_STATE_KEYS)
        if state == "used":
            ing.store.set_pool(pt.svc, pkind, pool, used=v)
        elif state == "idle":
            ing.store.set_pool(pt.svc, pkind, pool, idle=v)
        return
    ing.store.set_pool(pt.svc, pkind, pool, **{field: v})


def _pool_wait(ing: MetricIngestor, pt: Point, arg: tuple[str, str | None]) -> None:
    pkind, unit = arg
    pkind = _pool_kind(pkind, pt.attrs)
    sk = ing._sketch(pt, unit)
    if sk is not None and sk.count:
        ing.store.merge_pool_wait(pt.svc, pkind, _pool_name(pt.attrs), sk)


def _pool_timeouts(ing: MetricIngestor, pt: Point, pkind: str) -> None:
    v = ing._number(pt)
    if v:
        ing.store.add_pool_timeouts(pt.svc, _pool_kind(pkind, pt.attrs), str(sc.first(pt.attrs, sc.POOL_NAME_KEYS) or "default"), v)


def _breaker_state(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    v = ing._number(pt)
    if v is not None:
        ing.store.set_breaker_state(pt.svc, str(pt.attrs.get(sig.ATTR_BREAKER_NAME) or "default"), int(v))


def _breaker_transitions(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    v = ing._number(pt)
    if v:
        attrs = pt.attrs
        ing.store.add_breaker_transitions(pt.svc, str(attrs.get(sig.ATTR_BREAKER_NAME) or "default"), str(attrs.get(sig.ATTR_BREAKER_TO) or "unknown"), v)


def _breaker_calls(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    v = ing._number(pt)
    if v:
        attrs = pt.attrs
        ing.store.add_breaker_calls(pt.svc, str(attrs.get(sig.ATTR_BREAKER_NAME) or "default"), str(attrs.get(sig.ATTR_BREAKER_RESULT) or "unknown"), v)


def _lag_gauge(ing: MetricIngestor, pt: Point, field: str) -> None:
    v = ing._number(pt)
    if v is None:
        return
    attrs = pt.attrs
    group = str(sc.first(attrs, sc.MESSAGING_GROUP_KEYS) or "unknown")
    topic = str(sc.first(attrs, sc.MESSAGING_DESTINATION_KEYS) or "unknown")
    part = sc.first(attrs, sc.MESSAGING_PARTITION_KEYS)
    try:
        partition = int(part) if part is not None else 0
    except (TypeError, ValueError):
        raise BadPoint(f"partition {part!r} is not an integer") from None
    row = pt.lag.setdefault((group, topic, partition), {})
    row[field] = v
    row["service"] = pt.svc  # the consumer process: its findings are filed under its own service


def _coverage(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    v = ing._number(pt)
    if v is not None:
        attrs = pt.attrs
        ing.store.set_coverage(
            pt.svc,
            str(attrs.get(sig.ATTR_COVERAGE_LIBRARY) or "unknown"),
            str(attrs.get(sig.ATTR_COVERAGE_WHAT) or "signals"),
            v,
            version=str(attrs.get(sig.ATTR_COVERAGE_VERSION) or ""),
            try_=str(attrs.get(sig.ATTR_COVERAGE_TRY) or ""),
            instance=pt.ident,
        )


def _runtime_gauge(ing: MetricIngestor, pt: Point, field: str) -> None:
    v = ing._number(pt)
    if v is not None:
        ing.store.set_runtime(pt.svc, **{field: v})


def _runtime_rate(ing: MetricIngestor, pt: Point, field: str) -> None:
    rate = ing.streams.rate(pt.key, pt.metric, pt.p)
    if rate is not None:
        ing.store.set_runtime(pt.svc, **{field: rate})


def _queue_wait(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    sk = ing._sketch(pt, None)
    if sk is not None and sk.count:
        ing.store.merge_queue_wait(pt.svc, sc.route_name(sc.first(pt.attrs, sc.HTTP_ROUTE_KEYS), sc.first(pt.attrs, sc.URL_PATH_KEYS)), sk)


def _cpython_memory(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    if pt.attrs.get("type") == "rss":
        v = ing._number(pt)
        if v is not None:
            ing.store.set_runtime(pt.svc, rss=v)


def _runtime_sketch(ing: MetricIngestor, pt: Point, field: str) -> None:
    sk = ing._sketch(pt, None)
    if sk is not None and sk.count:
        ing.store.merge_runtime_sketch(pt.svc, field, sk)


def _breakdown(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    ing.store.mark_metric_authority(pt.svc, "breakdown")
    v = ing._number(pt)
    if not v:
        return
    attrs = pt.attrs
    route = sc.route_name(sc.first(attrs, sc.HTTP_ROUTE_KEYS), sc.first(attrs, sc.URL_PATH_KEYS))
    component = str(attrs.get(sig.ATTR_COMPONENT) or "self")
    slow = attrs.get(sig.ATTR_SLOW) in (True, "true", "True", 1)
    ing.store.add_breakdown(pt.svc, route, {component: v}, slow=slow)


def _signal_counter(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    v = ing._number(pt)
    if v:
        ing.store.add_counter(pt.svc, pt.metric.name, _signal_key(pt.attrs), v)


def _signal_histogram(ing: MetricIngestor, pt: Point, _arg: None) -> None:
    sk = ing._sketch(pt, None)  # unit: "{query}"/"By" stay, "ms" → s
    if sk is not None and sk.count:
        name = pt.metric.name
        k = _signal_key(pt.attrs)
        store = ing.store
        store.add_counter(pt.svc, f"{name}.sum", k, sk.sum)
        store.add_counter(pt.svc, f"{name}.count", k, sk.count)
        if pt.attrs.get(sig.ATTR_RESPONSE_COMPRESSED) in (False, "false", "False"):
            # response sizes sent without Content-Encoding (for the uncompressed_response finding)
            store.add_counter(pt.svc, f"{name}.uncompressed.sum", k, sk.sum)
            store.add_counter(pt.svc, f"{name}.uncompressed.count", k, sk.count)


Handler = Callable[[MetricIngestor, Point, object], None]


def _handlers() -> dict[str, tuple[str, Handler, object]]:
    """The table, built from the name tables above; a name may appear once."""
    rows: list[tuple[str, str, Handler, object]] = [
        *((name, HISTOGRAM, _route_latency, unit) for name, unit in _ROUTE_LATENCY.items()),
        *((name, HISTOGRAM, _dependency_latency, arg) for name, arg in _DEP_LATENCY.items()),
        *((name, NUMBER, _pool_gauge, arg) for name, arg in _POOL_GAUGES.items()),
        *((name, HISTOGRAM, _pool_wait, arg) for name, arg in _POOL_WAITS.items()),
        *((name, NUMBER, _pool_timeouts, kind) for name, kind in _POOL_TIMEOUTS.items()),
        (sig.BREAKER_STATE, NUMBER, _breaker_state, None),
        (sig.BREAKER_TRANSITIONS, NUMBER, _breaker_transitions, None),
        (sig.BREAKER_CALLS, NUMBER, _breaker_calls, None),
        *((name, NUMBER, _lag_gauge, field) for name, field in _LAG_GAUGES.items()),
        (sig.AGENT_COVERAGE, NUMBER, _coverage, None),
        *((name, NUMBER, _runtime_gauge, field) for name, field in _RUNTIME_GAUGES.items()),
        *((name, SUM, _runtime_rate, field) for name, field in _RUNTIME_RATES.items()),
        (sig.SERVER_QUEUE_WAIT_TIME, HISTOGRAM, _queue_wait, None),
        ("process.runtime.cpython.memory", NUMBER, _cpython_memory, None),
        *((name, HISTOGRAM, _runtime_sketch, field) for name, field in _RUNTIME_SKETCHES.items()),
        (sig.REQUEST_BREAKDOWN_TIME, NUMBER, _breakdown, None),
        *((name, NUMBER, _signal_counter, None) for name in _SIGNAL_COUNTERS),
        *((name, HISTOGRAM, _signal_histogram, None) for name in _SIGNAL_HISTOGRAMS),
    ]
    table: dict[str, tuple[str, Handler, object]] = {}
    for name, shape, handler, arg in rows:
        if name in table:
            raise ValueError(f"metric {name!r} has two handlers")
        table[name] = (shape, handler, arg)
    return table


POINT_HANDLERS = _handlers()


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
