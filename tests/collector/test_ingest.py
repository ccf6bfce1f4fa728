"""OTLP → store mapping with hand-built protobuf requests and exact expected values."""

from __future__ import annotations

import math
import os

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store, StoreConfig
from chokepoint.instrument import signals as sig

T0 = 1_700_000_000.0
NS = 1_000_000_000
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


# ---------------------------------------------------------------- builders
def kvs(attrs: dict) -> list:
    out = []
    for k, v in attrs.items():
        a = common_pb2.AnyValue()
        if isinstance(v, bool):
            a.bool_value = v
        elif isinstance(v, int):
            a.int_value = v
        elif isinstance(v, float):
            a.double_value = v
        else:
            a.string_value = v
        out.append(common_pb2.KeyValue(key=k, value=a))
    return out


def span(name, kind, ms, attrs=None, trace_id=None, parent=b"", error=False, start_ms=0.0):
    s = trace_pb2.Span(
        trace_id=trace_id or os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=int((T0 + start_ms / 1000) * NS),
        end_time_unix_nano=int((T0 + (start_ms + ms) / 1000) * NS),
    )
    s.attributes.extend(kvs(attrs or {}))
    if error:
        s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return s


def traces_request(service: str, spans: list, resource_attrs: dict | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs({"service.name": service, **(resource_attrs or {})}))
    rs.scope_spans.add().spans.extend(spans)
    return req


def metrics_request(service: str, metrics: list) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kvs({"service.name": service}))
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def explicit_hist(name, bounds, counts, attrs=None, temporality=DELTA, start=T0, unit="s", total=None, minimum=None, maximum=None):
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.histogram.aggregation_temporality = temporality
    p = m.histogram.data_points.add(start_time_unix_nano=int(start * NS), time_unix_nano=int((T0 + 10) * NS), count=sum(counts))
    p.explicit_bounds.extend(bounds)
    p.bucket_counts.extend(counts)
    p.attributes.extend(kvs(attrs or {}))
    if total is not None:
        p.sum = total
    if minimum is not None:
        p.min = minimum
    if maximum is not None:
        p.max = maximum
    return m


def exp_hist(name, scale, offset, counts, attrs=None, temporality=DELTA, start=T0, unit="s", zero=0):
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.exponential_histogram.aggregation_temporality = temporality
    p = m.exponential_histogram.data_points.add(
        start_time_unix_nano=int(start * NS), time_unix_nano=int((T0 + 10) * NS), count=sum(counts) + zero, scale=scale, zero_count=zero
    )
    p.positive.offset = offset
    p.positive.bucket_counts.extend(counts)
    p.attributes.extend(kvs(attrs or {}))
    return m


def number(name, value, attrs=None, kind="gauge", temporality=CUMULATIVE, monotonic=True, start=T0):
    m = metrics_pb2.Metric(name=name)
    if kind == "gauge":
        p = m.gauge.data_points.add()
    else:
        m.sum.aggregation_temporality = temporality
        m.sum.is_monotonic = monotonic
        p = m.sum.data_points.add()
    p.start_time_unix_nano = int(start * NS)
    p.time_unix_nano = int((T0 + 10) * NS)
    if isinstance(value, int):
        p.as_int = value
    else:
        p.as_double = value
    p.attributes.extend(kvs(attrs or {}))
    return m


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return Store(StoreConfig(bucket_seconds=10), clock=clock)


@pytest.fixture
def ingestor(store):
    return Ingestor(store)


def one(rows, **match):
    got = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(got) == 1, (match, rows)
    return got[0]


# ---------------------------------------------------------------- spans
def test_server_spans_current_semconv(ingestor, store):
    spans = [
        span("GET /items/{id}", SERVER, 20, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 200}) for _ in range(8)
    ]
    spans += [
        span("GET /items/{id}", SERVER, 40, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 503}) for _ in range(2)
    ]
    result = ingestor.consume_traces(traces_request("shop", spans))
    assert (result.accepted, result.rejected) == (10, 0)
    row = one(store.endpoints(), route="/items/{id}")
    assert row["service"] == "shop" and row["count"] == 10 and row["error_rate"] == 0.2
    assert row["p50_ms"] == pytest.approx(20, rel=0.01) and row["p999_ms"] == pytest.approx(40, rel=0.01)
    assert store.health()["spans_total"] == 10


def test_server_spans_old_semconv_fold_ids_out_of_the_path(ingestor, store):
    spans = [
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/42?x=1", "http.status_code": 500}),
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/7", "http.status_code": 200}),
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/7/orders/9f86d081884c7d659a2feaa0c55ad015", "http.status_code": 200}),
    ]
    ingestor.consume_traces(traces_request("legacy", spans))
    rows = {r["route"]: (r["count"], r["error_rate"]) for r in store.endpoints("legacy")}
    assert rows == {"/users/{id}": (2, 0.5), "/users/{id}/orders/{id}": (1, 0.0)}


def test_client_spans_become_dependencies_in_both_semconv_generations(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 100, {"http.route": "/a"}, trace_id=tid)
    pid = root.span_id
    children = [
        span("SELECT", CLIENT, 5, {"db.system": "postgresql", "db.statement": "SELECT * FROM t WHERE id = 42"}, tid, pid),
        span("SELECT", CLIENT, 7, {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM t WHERE id = 7"}, tid, pid),
        span("SELECT", CLIENT, 1, {"db.system.name": "postgresql", "db.query.summary": "SELECT t"}, tid, pid),
        span("GET", CLIENT, 30, {"http.method": "GET", "http.url": "http://api.example.com/x?token=s", "http.status_code": 502}, tid, pid),
        span(
            "GET",
            CLIENT,
            20,
            {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": 8081, "url.full": "http://127.0.0.1:8081/"},
            tid,
            pid,
        ),
        span("orders send", PRODUCER, 2, {"messaging.system": "kafka", "messaging.destination": "orders"}, tid, pid),
        span("orders send", PRODUCER, 3, {"messaging.system": "kafka", "messaging.destination.name": "orders"}, tid, pid),
    ]
    ingestor.consume_traces(traces_request("shop", [*children, root]))
    deps = {(d["kind"], d["target"]): (d["count"], d["error_rate"]) for d in store.dependencies()}
    assert deps == {
        ("db", "SELECT * FROM t WHERE id = ?"): (2, 0.0),
        ("db", "SELECT t"): (1, 0.0),
        ("http", "api.example.com"): (1, 1.0),
        ("http", "127.0.0.1:8081"): (1, 0.0),
        ("kafka", "orders"): (2, 0.0),
    }
    # the whole trace is in the batch: breakdown per component, self = the rest
    bd = store.breakdown("shop", "/a")
    assert bd["requests"] == 1
    assert bd["all"] == pytest.approx({"db": 13.0, "http:api.example.com": 30.0, "http:127.0.0.1:8081": 20.0, "kafka": 5.0, "self": 32.0})


def test_invalid_spans_are_rejected_and_the_rest_kept(ingestor, store):
    bad = span("x", SERVER, 10, {"http.route": "/a"})
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1
    good = span("x", SERVER, 10, {"http.route": "/a"})
    result = ingestor.consume_traces(traces_request("shop", [bad, good]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert "end before start" in result.error_message
    assert store.rejected == {("otlp", "invalid_span"): 1}
    assert one(store.endpoints(), route="/a")["count"] == 1


def test_foreign_traces_kept_when_errored_or_slower_than_route_p99(ingestor, store):
    fast = [span("GET /a", SERVER, 10 + i % 5, {"http.route": "/a"}) for i in range(50)]
    ingestor.consume_traces(traces_request("shop", fast))
    assert store.traces() == []  # nothing kept yet: no errors, and p99 unknown before 20 requests
    tid = os.urandom(16)
    slow_root = span("GET /a", SERVER, 500, {"http.route": "/a"}, trace_id=tid)
    child = span("SELECT", CLIENT, 450, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, slow_root.span_id, start_ms=10)
    failed = span("GET /a", SERVER, 5, {"http.route": "/a", "http.response.status_code": 500})
    normal = span("GET /a", SERVER, 11, {"http.route": "/a"})
    ingestor.consume_traces(traces_request("shop", [child, slow_root, failed, normal]))
    kept = {t["trace_id"]: t for t in store.traces()}
    assert set(kept) == {tid.hex(), failed.trace_id.hex()}
    slow = kept[tid.hex()]
    assert (slow["keep_reason"], slow["route"], slow["duration_ms"], slow["error"]) == ("slow", "/a", 500.0, False)
    assert [(s["name"], s["kind"], s["start_offset_ms"]) for s in slow["spans"]] == [("SELECT", "client", 10.0), ("GET /a", "server", 0.0)]
    assert slow["spans"][0]["attributes"]["db.statement"] == "SELECT 1"
    assert kept[failed.trace_id.hex()]["keep_reason"] == "error"
    # a late span of a kept trace is appended
    late = span("GET", CLIENT, 1, {"http.method": "GET", "server.address": "x"}, tid, slow_root.span_id)
    ingestor.consume_traces(traces_request("shop", [late]))
    assert len(next(t for t in store.traces() if t["trace_id"] == tid.hex())["spans"]) == 3


def test_agent_sampled_traces_are_kept_but_not_counted(ingestor, store):
    # the agent sends chokepoint.* metrics and the route histogram for 100 % of requests
    ingestor.consume_metrics(metrics_request("agent-app", [number(sig.THREADS if hasattr(sig, "THREADS") else sig.PROCESS_THREAD_COUNT, 5)]))
    ingestor.consume_metrics(metrics_request("agent-app", [number(sig.AGENT_DROPPED_SPANS, 0, kind="sum", temporality=DELTA)]))
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 300, {"http.route": "/a"}, trace_id=tid)
    db = span("SELECT", CLIENT, 250, {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, tid, root.span_id)
    ingestor.consume_traces(traces_request("agent-app", [db, root]))
    assert store.endpoints("agent-app") == [] and store.dependencies() == []
    [t] = store.traces()
    assert t["trace_id"] == tid.hex() and t["keep_reason"] == "random"  # no route percentiles yet
    # an explicit keep reason on a span wins, for any SDK
    marked = span("GET /b", SERVER, 3, {"http.route": "/b", sig.ATTR_KEEP_REASON: "slow"})
    ingestor.consume_traces(traces_request("foreign", [marked]))
    assert store.traces()[0]["keep_reason"] == "slow" and store.endpoints("foreign") == []


def test_metric_authority_stops_span_double_counting(ingestor, store):
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [3, 0], {"http.route": "/a"})]))
    ingestor.consume_traces(traces_request("shop", [span("GET /a", SERVER, 20, {"http.route": "/a"}) for _ in range(5)]))
    ingestor.consume_traces(traces_request("shop", [span("SELECT", CLIENT, 2, {"db.system": "postgresql", "db.statement": "SELECT 1"})]))
    assert one(store.endpoints(), route="/a")["count"] == 3  # metric only; the 5 spans are not added
    assert one(store.dependencies(), kind="db")["count"] == 1  # no DB metric from shop: spans count


# ---------------------------------------------------------------- metrics: histograms and temporality
def test_delta_explicit_histogram_feeds_route_latency(ingestor, store):
    m = explicit_hist(
        sig.HTTP_SERVER_DURATION,
        [0.01, 0.1, 1.0],
        [0, 9, 0, 1],
        {"http.route": "/a", "http.request.method": "GET", "http.response.status_code": 200},
        total=1.5,
        minimum=0.02,
        maximum=2.0,
    )
    m5 = explicit_hist(sig.HTTP_SERVER_DURATION, [0.01, 0.1, 1.0], [0, 1, 0, 0], {"http.route": "/a", "http.response.status_code": 500})
    result = ingestor.consume_metrics(metrics_request("shop", [m, m5]))
    assert (result.accepted, result.rejected) == (2, 0)
    row = one(store.endpoints(), route="/a")
    assert row["count"] == 11 and row["error_rate"] == pytest.approx(1 / 11, abs=1e-6)
    assert row["p50_ms"] == pytest.approx(math.sqrt(0.01 * 0.1) * 1000, rel=0.01)
    assert row["p999_ms"] == pytest.approx(math.sqrt(0.01 * 0.1) * 1000, rel=0.01)  # rank 9 of 11
    sketch = store.window(60).routes[("shop", "/a")].sketch
    assert (sketch.min, sketch.max, sketch.quantile(1.0)) == (0.02, 2.0, 2.0)
    assert store.health()["metric_points_total"] == 2


def test_cumulative_histogram_is_turned_into_deltas_per_stream(ingestor, store, clock):
    attrs = {"http.route": "/a"}
    start = T0 + 1  # the stream started after the collector: its first point counts in full
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [4, 0], attrs, CUMULATIVE, start)]))
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [10, 1], attrs, CUMULATIVE, start)]))
    assert one(store.endpoints(), route="/a")["count"] == 11
    # reset: a new start time → the point is the delta
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [2, 0], attrs, CUMULATIVE, start + 50)]))
    assert one(store.endpoints(), route="/a")["count"] == 13
    # another resource instance with the same attributes is its own stream
    req = metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1, 0], attrs, CUMULATIVE, start)])
    req.resource_metrics[0].resource.attributes.extend(kvs({"service.instance.id": "b"}))
    ingestor.consume_metrics(req)
    assert one(store.endpoints(), route="/a")["count"] == 14


def test_first_cumulative_point_of_an_older_stream_is_only_a_baseline(ingestor, store):
    attrs = {"http.route": "/a"}
    old = T0 - 3600  # the app ran for an hour before the collector started
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1000, 0], attrs, CUMULATIVE, old)]))
    assert store.endpoints() == []
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1004, 1], attrs, CUMULATIVE, old)]))
    assert one(store.endpoints(), route="/a")["count"] == 5


def test_exponential_histogram_delta_and_cumulative_with_scale_change(ingestor, store):
    attrs = {"http.route": "/e"}
    # scale 3: base 2^(1/8); 10 values in bucket 2^(-54/8)=~9.3 ms .. next
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 3, -54, [10], attrs)]))
    row = one(store.endpoints(), route="/e")
    assert row["count"] == 10
    assert row["p50_ms"] == pytest.approx(2 ** (-53.5 / 8) * 1000, rel=0.011)
    # cumulative stream that downscales from scale 3 to 2 between exports
    c_attrs = {"http.route": "/c"}
    start = T0 + 1
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 3, -54, [4, 0, 2], c_attrs, CUMULATIVE, start)]))
    # at scale 2: index -27 = old -54,-53; index -26 = old -52,-51; two more in -26, one more in -27
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 2, -27, [5, 4], c_attrs, CUMULATIVE, start)]))
    assert one(store.endpoints(), route="/c")["count"] == 9


def test_old_semconv_duration_in_milliseconds(ingestor, store):
    m = explicit_hist("http.server.duration", [5.0, 10.0, 25.0], [0, 0, 4, 0], {"http.method": "GET", "http.target": "/old/1"}, unit="ms")
    ingestor.consume_metrics(metrics_request("legacy", [m]))
    row = one(store.endpoints(), route="/old/{id}")
    assert row["count"] == 4 and row["p50_ms"] == pytest.approx(math.sqrt(10 * 25), rel=0.01)


def test_dependency_latency_metrics(ingestor, store):
    ms = [
        exp_hist(sig.DB_CLIENT_OPERATION_DURATION, 0, -10, [3], {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM t WHERE a = 'x'"}),
        explicit_hist(sig.HTTP_CLIENT_DURATION, [0.5], [2, 0], {"server.address": "api", "http.request.method": "GET", "http.response.status_code": 500}),
        explicit_hist(sig.MESSAGING_CLIENT_OPERATION_DURATION, [0.5], [1, 0], {"messaging.system": "kafka", "messaging.destination.name": "orders"}),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    deps = {(d["kind"], d["target"]): (d["count"], d["error_rate"]) for d in store.dependencies()}
    assert deps == {("db", "SELECT * FROM t WHERE a = ?"): (3, 0.0), ("http", "api"): (2, 1.0), ("kafka", "orders"): (1, 0.0)}


def test_malformed_points_are_rejected_and_the_rest_kept(ingestor, store):
    bad = explicit_hist(sig.HTTP_SERVER_DURATION, [0.1, 0.2], [1, 1], {"http.route": "/bad"})
    good = explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1, 1], {"http.route": "/good"})
    result = ingestor.consume_metrics(metrics_request("shop", [bad, good]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert "2 bucket counts for 2 bounds" in result.error_message
    assert [r["route"] for r in store.endpoints()] == ["/good"]
    assert store.rejected == {("otlp", "invalid_point"): 1}


# ---------------------------------------------------------------- metrics: sums and gauges
def test_pool_signals(ingestor, store, clock):
    pool = {sig.ATTR_DB_POOL_NAME: "main"}
    start = T0 + 1
    ms = [
        number(sig.DB_POOL_CONNECTION_COUNT, 7, {**pool, sig.ATTR_DB_POOL_STATE: "used"}, kind="sum", monotonic=False),
        number(sig.DB_POOL_CONNECTION_COUNT, 3, {**pool, sig.ATTR_DB_POOL_STATE: "idle"}, kind="sum", monotonic=False),
        number(sig.DB_POOL_CONNECTION_MAX, 10, pool, kind="sum", monotonic=False),
        number(sig.DB_POOL_PENDING_REQUESTS, 4, pool, kind="sum", monotonic=False),
        number(sig.DB_POOL_TIMEOUTS, 2, pool, kind="sum", start=start),
        explicit_hist(sig.DB_POOL_WAIT_TIME, [0.1, 1.0], [0, 5, 0], pool),
        number(sig.WORKER_POOL_BUSY, 4, {sig.ATTR_WORKER_POOL_KIND: "threadpool", sig.ATTR_POOL_NAME: "anyio"}),
        number(sig.WORKER_POOL_MAX, 40, {sig.ATTR_WORKER_POOL_KIND: "threadpool", sig.ATTR_POOL_NAME: "anyio"}),
        number(sig.WORKER_POOL_MAX, 3, {sig.ATTR_WORKER_POOL_KIND: "gunicorn", sig.ATTR_POOL_NAME: "gunicorn"}),
        number(sig.WORKER_POOL_PROCESSES, 4, {sig.ATTR_WORKER_POOL_KIND: "gunicorn", sig.ATTR_POOL_NAME: "gunicorn"}),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    # cumulative timeouts 2 → 5: +3; the gauge-like UpDownCounter is the latest value
    ingestor.consume_metrics(
        metrics_request(
            "shop",
            [
                number(sig.DB_POOL_TIMEOUTS, 5, pool, kind="sum", start=start),
                number(sig.DB_POOL_CONNECTION_COUNT, 10, {**pool, sig.ATTR_DB_POOL_STATE: "used"}, kind="sum", monotonic=False),
            ],
        )
    )
    db = one(store.pools(), kind="db")
    assert (db["name"], db["used"], db["idle"], db["max"], db["pending"], db["timeouts"]) == ("main", 10, 3, 10, 4, 5)
    assert db["wait_p99_ms"] == pytest.approx(math.sqrt(0.1) * 1000, rel=0.01)
    worker = one(store.pools(), kind="worker", name="anyio")
    assert (worker["name"], worker["used"], worker["max"], worker["processes"]) == ("anyio", 4, 40, None)
    gunicorn = one(store.pools(), kind="worker", name="gunicorn")
    assert (gunicorn["max"], gunicorn["processes"]) == (3, 4)  # 4 processes × 3 threads


def test_breaker_signals(ingestor, store):
    b = {sig.ATTR_BREAKER_NAME: "payments"}
    ms = [
        number(sig.BREAKER_STATE, 2, b),
        number(sig.BREAKER_TRANSITIONS, 1, {**b, sig.ATTR_BREAKER_FROM: "closed", sig.ATTR_BREAKER_TO: "open"}, kind="sum", temporality=DELTA),
        number(sig.BREAKER_CALLS, 8, {**b, sig.ATTR_BREAKER_RESULT: "success"}, kind="sum", temporality=DELTA),
        number(sig.BREAKER_CALLS, 2, {**b, sig.ATTR_BREAKER_RESULT: "failure"}, kind="sum", temporality=DELTA),
        number(sig.BREAKER_CALLS, 9, {**b, sig.ATTR_BREAKER_RESULT: "rejected"}, kind="sum", temporality=DELTA),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    [row] = store.breakers()
    assert (row["name"], row["state"], row["transitions"], row["rejected"], row["error_rate"]) == ("payments", "open", 1, 9, 0.2)


def test_agent_kafka_lag_gauges(ingestor, store):
    p = {sig.ATTR_MESSAGING_CONSUMER_GROUP: "billing", sig.ATTR_MESSAGING_DESTINATION: "orders", sig.ATTR_MESSAGING_PARTITION: "3"}
    ms = [
        number(sig.KAFKA_CONSUMER_COMMITTED_OFFSET, 900, p),
        number(sig.KAFKA_CONSUMER_HIGH_WATERMARK, 1000, p),
        number(sig.KAFKA_CONSUMER_LAG, 100, p),
        number(sig.KAFKA_CONSUMER_TIME_LAG, 4.5, p),
    ]
    ingestor.consume_metrics(metrics_request("billing-worker", ms))
    [row] = store.consumer_lag()
    assert (row["group"], row["topic"], row["partition"]) == ("billing", "orders", 3)
    assert (row["committed_offset"], row["log_end_offset"], row["lag"], row["time_lag_s"], row["status"]) == (900, 1000, 100, 4.5, "OK")
    assert row["source"] == "agent"


def test_runtime_signals(ingestor, store):
    ms = [
        number(sig.PROCESS_CPU_UTILIZATION, 0.97),
        number(sig.RUNTIME_CPU_RUN_QUEUE_WAIT, 0.41),
        number(sig.PROCESS_MEMORY_USAGE, 123_000_000),
        number(sig.PROCESS_THREAD_COUNT, 12),
        exp_hist(sig.RUNTIME_GC_PAUSE_TIME, 0, -7, [4]),  # (2^-7, 2^-6] s
        explicit_hist(sig.RUNTIME_EVENT_LOOP_LAG, [0.01, 0.1], [0, 0, 2], maximum=0.3),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    assert store.timeseries("cpu_utilization")[0]["points"][0][1] == 0.97
    assert store.timeseries("cpu_run_queue_wait")[0]["points"][0][1] == 0.41
    assert store.timeseries("rss_bytes")[0]["points"][0][1] == 123_000_000
    assert store.timeseries("threads")[0]["points"][0][1] == 12
    assert store.timeseries("gc_pause_p99_ms")[0]["points"][0][1] == pytest.approx(2**-6.5 * 1000, rel=0.011)
    assert store.timeseries("event_loop_lag_p99_ms")[0]["points"][0][1] == pytest.approx(300, rel=0.01)


def test_breakdown_counter_from_the_agent(ingestor, store):
    start = T0 + 1
    ms = [
        explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [10, 0], {"http.route": "/a"}),
        number(sig.REQUEST_BREAKDOWN_TIME, 0.5, {"http.route": "/a", sig.ATTR_COMPONENT: "db", sig.ATTR_SLOW: False}, kind="sum", start=start),
        number(sig.REQUEST_BREAKDOWN_TIME, 0.3, {"http.route": "/a", sig.ATTR_COMPONENT: "pool_wait", sig.ATTR_SLOW: True}, kind="sum", start=start),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    bd = store.breakdown("shop", "/a")
    assert bd["requests"] == 10
    assert bd["all"] == {"db": 50.0, "pool_wait": 30.0}
    assert bd["slow_requests"] == 1 and bd["slow"] == {"pool_wait": 300.0}
    # spans of this service no longer feed the breakdown
    ingestor.consume_traces(traces_request("shop", [span("GET /a", SERVER, 10, {"http.route": "/a"})]))
    assert store.breakdown("shop", "/a")["all"] == {"db": 50.0, "pool_wait": 30.0}


def test_signal_counters_for_the_analyzer(ingestor, store):
    ms = [
        number(sig.HTTP_CLIENT_RETRIES, 3, {sig.ATTR_SERVER_ADDRESS: "api", sig.ATTR_HTTP_ROUTE: "/a"}, kind="sum", temporality=DELTA),
        number(sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, 2, {sig.ATTR_SERVER_ADDRESS: "api"}, kind="sum", temporality=DELTA),
        explicit_hist(sig.REQUEST_DB_QUERIES, [1, 5, 20], [0, 0, 0, 2], {sig.ATTR_HTTP_ROUTE: "/a"}, unit="{query}", total=60),
        explicit_hist(
            sig.HTTP_SERVER_RESPONSE_BODY_SIZE, [1000], [0, 3], {sig.ATTR_HTTP_ROUTE: "/a", sig.ATTR_RESPONSE_COMPRESSED: False}, unit="By", total=3e6
        ),
        explicit_hist(
            sig.HTTP_SERVER_RESPONSE_BODY_SIZE, [1000], [0, 1], {sig.ATTR_HTTP_ROUTE: "/a", sig.ATTR_RESPONSE_COMPRESSED: True}, unit="By", total=2e5
        ),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    counters = store.window(60).counters
    assert counters[("shop", sig.HTTP_CLIENT_RETRIES, "api")] == 3
    assert counters[("shop", sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, "api")] == 2
    assert counters[("shop", f"{sig.REQUEST_DB_QUERIES}.sum", "/a")] == 60
    assert counters[("shop", f"{sig.REQUEST_DB_QUERIES}.count", "/a")] == 2
    assert counters[("shop", f"{sig.HTTP_SERVER_RESPONSE_BODY_SIZE}.sum", "/a")] == 3.2e6
    assert counters[("shop", f"{sig.HTTP_SERVER_RESPONSE_BODY_SIZE}.count", "/a")] == 4
    assert counters[("shop", f"{sig.HTTP_SERVER_RESPONSE_BODY_SIZE}.uncompressed.sum", "/a")] == 3e6
    assert counters[("shop", f"{sig.HTTP_SERVER_RESPONSE_BODY_SIZE}.uncompressed.count", "/a")] == 3


def test_unknown_metrics_are_accepted_and_ignored(ingestor, store):
    result = ingestor.consume_metrics(metrics_request("shop", [number("some.other.metric", 1)]))
    assert (result.accepted, result.rejected) == (1, 0)
    assert store.endpoints() == [] and store.pools() == []


def test_children_exported_before_their_root_join_the_trace(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 100, {"http.route": "/a", "http.response.status_code": 500}, trace_id=tid)
    db = span("SELECT", CLIENT, 60, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, root.span_id)
    ingestor.consume_traces(traces_request("shop", [db]))  # batch 1: the child only
    assert store.traces() == [] and one(store.dependencies(), kind="db")["count"] == 1
    ingestor.consume_traces(traces_request("shop", [root]))  # batch 2: the root
    [t] = store.traces()
    assert t["keep_reason"] == "error" and [s["name"] for s in t["spans"]] == ["SELECT", "GET /a"]
    assert store.breakdown("shop", "/a")["all"] == pytest.approx({"db": 60.0, "self": 40.0})
    assert one(store.dependencies(), kind="db")["count"] == 1  # not counted twice
    assert ingestor._pending_spans == 0


def test_pending_children_are_bounded(ingestor, store):
    ingestor.max_pending_spans = 3
    for _ in range(5):
        ingestor.consume_traces(traces_request("shop", [span("SELECT", CLIENT, 1, {"db.system": "postgresql"}, parent=os.urandom(8))]))
    assert ingestor._pending_spans == 3 and len(ingestor._pending) == 3


def test_histogram_without_buckets_counts_at_the_mean(ingestor, store):
    m = explicit_hist(sig.HTTP_SERVER_DURATION, [], [], {"http.route": "/nobuckets"})
    del m.histogram.data_points[0].bucket_counts[:]
    m.histogram.data_points[0].count = 4
    m.histogram.data_points[0].sum = 0.2
    ingestor.consume_metrics(metrics_request("shop", [m]))
    row = one(store.endpoints(), route="/nobuckets")
    assert row["count"] == 4 and row["p50_ms"] == pytest.approx(50.0, rel=0.01)


def test_hostile_values_are_rejected_or_harmless(ingestor, store):
    huge = exp_hist(sig.HTTP_SERVER_DURATION, 0, 2_000_000, [1], {"http.route": "/huge"})  # 2^2e6 s overflows
    nan = number(sig.PROCESS_CPU_UTILIZATION, float("nan"))
    odd = span("x", SERVER, 5, {"http.route": "/odd", "http.response.status_code": "not-a-number"})
    odd.attributes.add(key="http.request.method").value.array_value.values.add().string_value = "GET"
    short_id = span("x", SERVER, 5, {"http.route": "/bad"})
    short_id.trace_id = b"\x01\x02"
    m = ingestor.consume_metrics(metrics_request("shop", [huge, nan]))
    t = ingestor.consume_traces(traces_request("shop", [odd, short_id]))
    assert (m.accepted, m.rejected) == (0, 2) and (t.accepted, t.rejected) == (1, 1)
    assert [r["route"] for r in store.endpoints()] == ["/odd"] and store.endpoints()[0]["error_rate"] == 0.0
    assert store.timeseries("cpu_utilization") == []


def test_nested_outbound_spans_count_once(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /n", SERVER, 50, {"http.route": "/n"}, trace_id=tid)
    orm = span("SELECT", CLIENT, 20, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, root.span_id)
    driver = span("SELECT", CLIENT, 19, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, orm.span_id)
    requests_span = span("GET", CLIENT, 10, {"http.method": "GET", "server.address": "api"}, tid, root.span_id)
    urllib3_span = span("GET", CLIENT, 9, {"http.method": "GET", "server.address": "api"}, tid, requests_span.span_id)
    ingestor.consume_traces(traces_request("shop", [driver, orm, urllib3_span, requests_span, root]))
    assert {(d["kind"], d["count"]) for d in store.dependencies()} == {("db", 1), ("http", 1)}
    assert store.breakdown("shop", "/n")["all"] == pytest.approx({"db": 20.0, "http:api": 10.0, "self": 20.0})


def test_agent_coverage_gauge_becomes_a_blind_spot(ingestor, store):
    def coverage(value, library="SQLAlchemy", what="statement spans"):
        return number(
            sig.AGENT_COVERAGE,
            value,
            {
                sig.ATTR_COVERAGE_LIBRARY: library,
                sig.ATTR_COVERAGE_VERSION: "2.0.23",
                sig.ATTR_COVERAGE_WHAT: what,
                sig.ATTR_COVERAGE_TRY: "CHOKEPOINT_SQLALCHEMY_SPANS=listeners",
            },
        )

    result = ingestor.consume_metrics(metrics_request("shop", [coverage(0), coverage(1, what="pool metrics")]))
    assert (result.accepted, result.rejected) == (2, 0)
    assert store.health()["blind_spots"] == [
        {"service": "shop", "library": "SQLAlchemy", "version": "2.0.23", "what": "statement spans", "try": "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"}
    ]
    ingestor.consume_metrics(metrics_request("shop", [coverage(1)]))  # the same process, fixed
    assert store.health()["blind_spots"] == []


def test_client_pools_keep_their_kind_and_worker_pools_stay_workers(ingestor, store):
    http = {sig.ATTR_POOL_NAME: "api.example:443", sig.ATTR_POOL_KIND: "http"}
    redis = {sig.ATTR_DB_POOL_NAME: "redis://127.0.0.1:6379/0", sig.ATTR_POOL_KIND: "redis"}
    ms = [
        number(sig.DB_POOL_CONNECTION_COUNT, 4, {**http, sig.ATTR_DB_POOL_STATE: "used"}, kind="sum", monotonic=False),
        number(sig.DB_POOL_CONNECTION_MAX, 4, http, kind="sum", monotonic=False),
        number(sig.DB_POOL_PENDING_REQUESTS, 6, http, kind="sum", monotonic=False),
        explicit_hist(sig.DB_POOL_WAIT_TIME, [0.1, 1.0], [0, 3, 0], http),
        number(sig.DB_POOL_TIMEOUTS, 2, http, kind="sum", temporality=DELTA),
        number(sig.DB_POOL_CONNECTION_COUNT, 1, {**redis, sig.ATTR_DB_POOL_STATE: "used"}, kind="sum", monotonic=False),
        number(sig.DB_POOL_CONNECTION_MAX, 2, redis, kind="sum", monotonic=False),
        number(sig.DB_POOL_CONNECTION_MAX, 5, {sig.ATTR_DB_POOL_NAME: "main", sig.ATTR_POOL_KIND: "bogus"}, kind="sum", monotonic=False),
        number(sig.WORKER_POOL_MAX, 8, {sig.ATTR_WORKER_POOL_KIND: "gunicorn", sig.ATTR_POOL_KIND: "http"}),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    pools = store.pools()
    h = one(pools, kind="http")
    assert (h["name"], h["used"], h["max"], h["pending"], h["wait_count"], h["timeouts"]) == ("api.example:443", 4, 4, 6, 3, 2)
    r = one(pools, kind="redis")
    assert (r["name"], r["used"], r["max"]) == ("redis://127.0.0.1:6379/0", 1, 2)
    assert one(pools, kind="db")["name"] == "main"  # an unknown kind is a DB pool, as without the attribute
    assert one(pools, kind="worker")["max"] == 8


def _at(metric, start_s, time_s):
    for p in metric.sum.data_points:
        p.start_time_unix_nano, p.time_unix_nano = int(start_s * NS), int(time_s * NS)
    return metric


def test_server_wait_gauges_and_gc_cpu_rate_land_in_the_runtime(ingestor, store):
    gauges = {
        sig.SERVER_ACCEPT_BACKLOG: 17,
        sig.SERVER_ACCEPT_BACKLOG_MAX: 128,
        sig.SERVER_ACCEPT_RATE: 42.5,
        sig.RUNTIME_EVENT_LOOP_BUSY: 0.93,
        sig.RUNTIME_EVENT_LOOP_STALL_MAX: 0.25,
    }
    # cumulative GC CPU: 1.0 s at T0+20, 4.0 s at T0+30 → 0.3 s per second; the stream began before the collector
    ms = [number(name, v) for name, v in gauges.items()] + [_at(number(sig.RUNTIME_GC_CPU_TIME, 1.0, kind="sum"), T0, T0 + 20)]
    ingestor.consume_metrics(metrics_request("shop", ms))
    ingestor.consume_metrics(metrics_request("shop", [_at(number(sig.RUNTIME_GC_CPU_TIME, 4.0, kind="sum"), T0, T0 + 30)]))
    ingestor.consume_metrics(metrics_request("worker", [_at(number(sig.RUNTIME_GC_CPU_TIME, 0.5, kind="sum", temporality=DELTA), T0, T0 + 10)]))
    r = store.window(60).runtime["shop"]
    got = {f: getattr(r, f) for f in ("accept_backlog", "accept_backlog_max", "accept_rate", "loop_busy", "loop_stall_max", "gc_cpu")}
    assert got == {
        "accept_backlog": 17,
        "accept_backlog_max": 128,
        "accept_rate": 42.5,
        "loop_busy": 0.93,
        "loop_stall_max": 0.25,
        "gc_cpu": pytest.approx(0.3),
    }
    assert store.window(60).runtime["worker"].gc_cpu == pytest.approx(0.05)  # delta: 0.5 s over its 10 s


def test_queue_wait_histogram_is_a_per_route_distribution(ingestor, store):
    ms = [
        explicit_hist(sig.SERVER_QUEUE_WAIT_TIME, [0.01, 0.1, 1.0], [0, 0, 9, 0], {sig.ATTR_HTTP_ROUTE: "/orders"}),
        explicit_hist(sig.SERVER_QUEUE_WAIT_TIME, [0.01, 0.1], [3, 0, 0], {sig.ATTR_HTTP_ROUTE: "/health"}),
    ]
    ingestor.consume_metrics(metrics_request("shop", ms))
    rows = store.queue_waits()
    orders = one(rows, route="/orders")
    assert (orders["service"], orders["count"]) == ("shop", 9)
    assert 100 < orders["p99_ms"] <= 1000
    assert one(rows, route="/health")["count"] == 3
    assert store.endpoints("shop") == []  # a queue wait is not a request latency
