"""Metric points → the store through the handler table (``ingest_points``), with hand-built
protobuf requests and exact expected values."""

from __future__ import annotations

import math

import pytest

from chokepoint.instrument import signals as sig
from tests.collector.otlp_builders import DELTA, NS, SERVER, T0, exp_hist, explicit_hist, metrics_request, number, one, span, traces_request


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


def test_a_point_of_another_kind_under_a_handled_name_is_accepted_and_ignored(ingestor, store):
    gauge_named_like_a_histogram = number(sig.HTTP_SERVER_DURATION, 0.2, {"http.route": "/a"})
    histogram_named_like_a_gauge = explicit_hist(sig.BREAKER_STATE, [1.0], [1, 0], {sig.ATTR_BREAKER_NAME: "b"})
    gauge_named_like_a_rate = number(sig.RUNTIME_GC_CPU_TIME, 1.5)  # the GC CPU rate takes sums only
    result = ingestor.consume_metrics(metrics_request("shop", [gauge_named_like_a_histogram, histogram_named_like_a_gauge, gauge_named_like_a_rate]))
    assert (result.accepted, result.rejected) == (3, 0)
    assert store.endpoints() == [] and store.breakers() == [] and store.window(60).runtime == {}
    assert not store.metric_authoritative("shop", "server")  # only a decoded histogram marks it


def test_every_handled_name_has_one_shape_and_handler():
    from chokepoint.collector.ingest_points import HISTOGRAM, NUMBER, POINT_HANDLERS, SUM

    assert {shape for shape, _handler, _arg in POINT_HANDLERS.values()} == {HISTOGRAM, NUMBER, SUM}
    assert POINT_HANDLERS[sig.HTTP_SERVER_DURATION][0] == HISTOGRAM and POINT_HANDLERS["http.server.duration"][2] == "ms"
    assert POINT_HANDLERS[sig.RUNTIME_GC_CPU_TIME][0] == SUM and POINT_HANDLERS[sig.BREAKER_STATE][0] == NUMBER
