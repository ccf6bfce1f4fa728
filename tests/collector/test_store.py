"""The store: buckets and windows, cardinality caps, query shapes, series, traces."""

from __future__ import annotations

import pytest

from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import COVERAGE_TTL_S, OTHER, TIMESERIES_METRICS, Store, StoreConfig


class Clock:
    def __init__(self, t: float = 10_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return Store(StoreConfig(bucket_seconds=10), clock=clock)


def test_endpoints_merge_buckets_of_the_window(store, clock):
    store.add_requests("shop", "/a", [0.010] * 90, errors=0)
    clock.t += 10
    store.add_requests("shop", "/a", [0.100] * 10, errors=5)
    clock.t += 5
    [row] = store.endpoints("shop", window_s=60)
    assert row["service"] == "shop" and row["route"] == "/a" and row["count"] == 100
    assert row["error_rate"] == 0.05
    assert row["p50_ms"] == pytest.approx(10.0, rel=0.01)
    assert row["p99_ms"] == pytest.approx(100.0, rel=0.01)
    # the store is 15 s old: rates divide by its age, not by the 60 s window
    assert row["rps"] == pytest.approx(100 / 15)
    # a window that only covers the newest bucket
    [recent] = store.endpoints("shop", window_s=5)
    assert recent["count"] == 10
    assert store.endpoints("other-service") == []


def test_services_and_dependencies(store, clock):
    store.add_requests("shop", "/a", [0.01, 0.02], errors=1)
    store.add_requests("shop", "/b", [0.01])
    store.add_dependency_calls("shop", "db", "SELECT ?", [0.002, 0.004], errors=1)
    clock.t += 10  # rates divide by the 10 s the data covers
    [svc] = store.services()
    assert svc == {"name": "shop", "endpoints": 2, "rps": pytest.approx(0.3), "error_rate": pytest.approx(1 / 3, abs=1e-6)}
    [dep] = store.dependencies()
    assert (dep["service"], dep["kind"], dep["target"], dep["count"], dep["error_rate"]) == ("shop", "db", "SELECT ?", 2, 0.5)
    assert dep["rps"] == pytest.approx(0.2)
    # rank rule: p99 of two values is the lower one (index floor(0.99 * (n - 1)))
    assert dep["p99_ms"] == pytest.approx(2.0, rel=0.01)


def test_route_cardinality_folds_into_other_and_is_counted(clock):
    store = Store(StoreConfig(max_routes_per_service=3, max_services=2, max_dependencies_per_service=1), clock=clock)
    for i in range(5):
        store.add_requests("shop", f"/r{i}", [0.01])
    routes = {r["route"]: r["count"] for r in store.endpoints("shop")}
    assert routes == {"/r0": 1, "/r1": 1, "/r2": 1, OTHER: 2}
    store.add_requests("svc2", "/x", [0.01])
    store.add_requests("svc3", "/x", [0.01])  # third service → "other"
    assert {s["name"] for s in store.services()} == {"shop", "svc2", OTHER}
    store.add_dependency_calls("shop", "db", "SELECT 1", [0.001])
    store.add_dependency_calls("shop", "db", "SELECT 2", [0.001])
    assert {d["target"] for d in store.dependencies()} == {"SELECT 1", OTHER}
    assert store.dropped["cardinality"] == 2 + 1 + 1
    # a known route keeps landing in its own key after the cap is reached
    store.add_requests("shop", "/r1", [0.01])
    assert {r["route"]: r["count"] for r in store.endpoints("shop")}["/r1"] == 2


def test_flush_due_closes_buckets_and_retention_drops_old_ones(clock):
    store = Store(StoreConfig(bucket_seconds=10, memory_retention_s=60), clock=clock)
    store.add_requests("shop", "/a", [0.01])
    assert store.closed_buckets() == []
    clock.t += 10
    store.flush_due()
    [closed] = store.closed_buckets()
    assert closed.routes[("shop", "/a")].count == 1
    clock.t += 100
    store.flush_due()
    assert store.closed_buckets() == [] and store.health()["buckets_in_memory"] == 0
    # totals for /metrics survive the memory retention
    totals, _latest = store.exposition_snapshot()
    assert totals.routes[("shop", "/a")].count == 1


def test_window_and_baseline_for_the_analyzer(store, clock):
    store.add_requests("shop", "/a", [0.01] * 10)
    clock.t += 300
    store.add_requests("shop", "/a", [0.5] * 10)
    now = store.window(60)
    base = store.window(60, end_s=clock.t - 250)
    assert now.routes[("shop", "/a")].sketch.quantile(0.5) == pytest.approx(0.5, rel=0.01)
    assert base.routes[("shop", "/a")].sketch.quantile(0.5) == pytest.approx(0.01, rel=0.01)
    assert [b.start for b in store.buckets(3600)] == [10_000.0, 10_300.0]


def test_pools_latest_gauges_and_window_waits(store, clock):
    store.set_pool("shop", "db", "main", used=3, max=10, pending=0)
    store.add_pool_waits("shop", "db", "main", [0.001] * 99 + [0.4])
    store.add_pool_timeouts("shop", "db", "main", 2)
    clock.t += 10
    store.set_pool("shop", "db", "main", used=10, pending=4)
    [p] = store.pools()
    assert (p["used"], p["max"], p["pending"], p["timeouts"]) == (10, 10, 4, 2)
    assert p["wait_p99_ms"] == pytest.approx(1.0, rel=0.01)
    assert p["wait_count"] == 100


def test_breakers_state_and_calls(store):
    store.set_breaker_state("shop", "payments", "open")
    store.add_breaker_transitions("shop", "payments", "open", 1)
    store.add_breaker_calls("shop", "payments", "success", 6)
    store.add_breaker_calls("shop", "payments", "failure", 2)
    store.add_breaker_calls("shop", "payments", "rejected", 5)
    [b] = store.breakers()
    assert b["state"] == "open" and b["transitions"] == 1 and b["rejected"] == 5
    assert b["calls"] == {"success": 6, "failure": 2, "rejected": 5}
    assert b["error_rate"] == 0.25
    with pytest.raises(ValueError):
        store.set_breaker_state("shop", "payments", 7)


def test_consumer_lag_rows_status_and_interpolated_time_lag(store, clock):
    for i in range(4):
        # log end grows 100/10 s, the consumer 20/10 s: WARN; log end history gives time lag
        store.record_consumer_offsets("g", "orders", 0, 1000 + 20 * i, 1100 + 100 * i, clock.t)
        clock.t += 10
    [row] = store.consumer_lag()
    assert row["group"] == "g" and row["topic"] == "orders" and row["partition"] == 0
    assert (row["committed_offset"], row["log_end_offset"], row["lag"]) == (1060, 1400, 340)
    assert row["status"] == "WARN"
    # 1060 is older than the log-end history (1100 at t0): extrapolated at 10 msg/s → t0 - 4 s,
    # the newest sample is at t0 + 30 s
    assert row["time_lag_s"] == pytest.approx(34.0)
    clock.t += 200  # no new samples: the consumer stopped
    [row] = store.consumer_lag()
    assert row["status"] == "STOP"


def test_breakdown_averages_per_request(store):
    store.add_requests("shop", "/a", [0.1, 0.1, 0.1, 0.1])
    store.add_breakdown("shop", "/a", {"db": 0.2, "self": 0.2}, requests=4)
    store.add_breakdown("shop", "/a", {"pool_wait": 0.3}, slow=True, requests=1)
    bd = store.breakdown("shop", "/a")
    assert bd["requests"] == 5 and bd["slow_requests"] == 1
    assert bd["all"] == {"db": 40.0, "pool_wait": 60.0, "self": 40.0}
    assert bd["slow"] == {"pool_wait": 300.0}


def test_breakdown_from_metrics_without_request_counts_uses_route_counts(store):
    store.add_requests("shop", "/a", [0.01] * 95 + [1.0] * 5)
    store.add_breakdown("shop", "/a", {"db": 1.0, "self": 0.5})
    store.add_breakdown("shop", "/a", {"db": 0.5}, slow=True)
    bd = store.breakdown("shop", "/a")
    assert bd["requests"] == 100
    assert bd["all"] == {"db": 15.0, "self": 5.0}
    assert bd["slow_requests"] == 5 and bd["slow"] == {"db": 100.0}


def test_timeseries_points_per_bucket_and_unknown_metric(store, clock):
    store.add_requests("shop", "/a", [0.01] * 10)
    store.set_runtime("shop", cpu=0.5, rss=1e8, threads=8)
    clock.t += 10
    store.add_requests("shop", "/a", [0.02] * 20)
    store.set_runtime("shop", cpu=0.9, run_queue_wait=0.4)
    clock.t += 5  # the open bucket has covered 5 s so far
    [s] = store.timeseries("rps", service="shop", target="/a")
    assert s["points"] == [[10_000.0, 1.0], [10_010.0, 4.0]]
    clock.t += 5
    [s] = store.timeseries("rps", service="shop", target="/a")
    assert s["labels"] == {"service": "shop", "route": "/a"}
    assert s["points"] == [[10_000.0, 1.0], [10_010.0, 2.0]]
    [p99] = store.timeseries("latency_p99_ms")
    assert [round(v) for _t, v in p99["points"]] == [10, 20]
    [cpu] = store.timeseries("cpu_utilization", service="shop")
    assert cpu["points"] == [[10_000.0, 0.5], [10_010.0, 0.9]]
    [waited] = store.timeseries("cpu_run_queue_wait", service="shop")
    assert waited["points"] == [[10_010.0, 0.4]]  # no value in the first bucket: no point
    for metric in TIMESERIES_METRICS:
        assert isinstance(store.timeseries(metric), list)
    with pytest.raises(ValueError, match="unknown metric"):
        store.timeseries("nope")


def test_histogram_and_heatmap_on_a_log_ladder(store, clock):
    store.add_requests("shop", "/a", [0.0011] * 3 + [0.050] * 2)
    clock.t += 10
    store.add_requests("shop", "/a", [0.050])
    hist = store.histogram("shop", "/a")
    assert sum(b["count"] for b in hist) == 6
    assert hist[0]["count"] == 3 and hist[-1]["count"] == 3
    assert hist[0]["le_ms"] >= 1.1 and hist[-1]["le_ms"] >= 50.0
    heat = store.heatmap("shop", "/a")
    assert heat["times"] == [10_000.0, 10_010.0]
    assert len(heat["le_ms"]) == len(hist)
    assert [sum(row) for row in heat["counts"]] == [5, 1]
    assert store.histogram("shop", "/none") == [] and store.heatmap("shop", "/none")["times"] == []


def test_kept_traces_are_bounded_and_filterable(clock):
    store = Store(StoreConfig(max_kept_traces=3, max_spans_per_trace=2), clock=clock)
    for i in range(5):
        store.keep_trace(
            {
                "trace_id": f"t{i}",
                "service": "shop",
                "route": "/a" if i % 2 else "/b",
                "duration_ms": i,
                "error": False,
                "keep_reason": "slow" if i else "error",
                "start": i,
                "spans": [{"span_id": "s"}] * 3,
            }
        )
    got = store.traces()
    assert [t["trace_id"] for t in got] == ["t4", "t3", "t2"]
    assert all(len(t["spans"]) == 2 for t in got)
    assert [t["trace_id"] for t in store.traces(route="/a")] == ["t3"]
    assert [t["trace_id"] for t in store.traces(limit=1)] == ["t4"]
    assert store.add_spans_to_kept_trace("t0", [{}]) is False
    assert store.dropped["trace_too_large"] == 5
    assert store.add_spans_to_kept_trace("t4", [{}, {}]) is True
    assert store.dropped["trace_too_large"] == 7


def test_kept_spans_are_capped_across_traces(clock):
    store = Store(StoreConfig(max_kept_traces=100, max_kept_spans=10), clock=clock)
    for i in range(5):
        store.keep_trace({"trace_id": f"t{i}", "route": "/a", "keep_reason": "slow", "spans": [{"span_id": str(j)} for j in range(4)]})
    assert [t["trace_id"] for t in store.traces()] == ["t4", "t3"]
    assert store.health()["kept_traces"] == 2


def test_health_counts(store):
    store.count_ingested("grpc", spans=10, points=3)
    store.count_rejected("http", "invalid_span", 2)
    store.count_dropped("queue_full")
    store.add_requests("shop", "/a", [0.01])
    h = store.health()
    assert h["status"] == "ok" and h["services"] == 1
    assert (h["spans_total"], h["metric_points_total"], h["rejected_total"], h["dropped_total"]) == (10, 3, 2, 1)


def test_merge_requests_from_a_metric_sketch(store):
    s = Sketch()
    s.add_many([0.2] * 4)
    store.merge_requests("shop", "/m", s, errors=4)
    [row] = store.endpoints()
    assert row["count"] == 4 and row["error_rate"] == 1.0


def test_agent_and_pull_lag_sources_are_judged_separately(store, clock):
    # the pull monitor saw committed 120 a moment after the agent reported 100: no rewind
    for i in range(3):
        store.record_consumer_offsets("g", "t", 0, 100 + 50 * i, 200 + 50 * i, clock.t, source="agent")
        clock.t += 1
        store.record_consumer_offsets("g", "t", 0, 120 + 50 * i, 210 + 50 * i, clock.t, source="pull")
        clock.t += 9
    [row] = store.consumer_lag()
    assert row["source"] == "pull" and row["status"] == "OK"


def test_analyzer_counter_keys_are_capped(clock):
    store = Store(StoreConfig(max_dependencies_per_service=1), clock=clock)
    for i in range(6):
        store.add_counter("shop", "retries", f"host{i}", 1)
    counters = store.window(60).counters
    assert counters[("shop", "retries", OTHER)] == 2
    assert len(counters) == 5


def test_pull_monitor_row_wins_and_borrows_the_agent_time_lag(store, clock):
    store.record_consumer_offsets("g", "t", 0, 100, 200, clock.t, source="pull")
    clock.t += 1
    store.record_consumer_offsets("g", "t", 0, 110, 205, clock.t, time_lag_s=3.5, source="agent")
    [row] = store.consumer_lag()
    assert (row["source"], row["committed_offset"], row["lag"], row["time_lag_s"]) == ("pull", 100, 100, 3.5)
    clock.t += 400  # the pull monitor went quiet: the fresher agent row is shown
    store.record_consumer_offsets("g", "t", 0, 300, 305, clock.t, time_lag_s=0.5, source="agent")
    [row] = store.consumer_lag()
    assert (row["source"], row["committed_offset"]) == ("agent", 300)


def test_every_query_is_strict_json(store, clock):
    import json

    store.add_requests("shop", "/a", [0.01, 200.0], errors=1)
    store.add_dependency_calls("shop", "http", "api", [0.3])
    store.set_pool("shop", "db", "main", used=1)
    store.set_breaker_state("shop", "b", 0)
    store.record_consumer_offsets("g", "t", 0, 5, 9, clock.t)
    store.record_consumer_lag("g2", "t", 1, 3, None, clock.t)
    store.set_runtime("shop", cpu=0.2)
    store.add_breakdown("shop", "/a", {"db": 0.1}, requests=1)
    store.keep_trace({"trace_id": "x", "service": "shop", "route": "/a", "duration_ms": 1.0, "error": False, "keep_reason": "slow", "start": 1.0, "spans": []})
    clock.t += 10
    queries = [
        store.health(),
        store.services(),
        store.endpoints(),
        store.dependencies(),
        store.pools(),
        store.breakers(),
        store.consumer_lag(),
        store.traces(),
        store.histogram("shop", "/a"),
        store.heatmap("shop", "/a"),
        store.breakdown("shop", "/a"),
        *[store.timeseries(m) for m in TIMESERIES_METRICS],
    ]
    for q in queries:
        json.dumps(q, allow_nan=False)
    assert store.histogram("shop", "/a")[-1]["le_ms"] is None  # 200 s is past the ladder's 100 s


def test_blind_spots_latest_per_process_expire_when_no_longer_reported(store, clock):
    assert store.health()["blind_spots"] == []
    try_ = "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"
    store.set_coverage("shop", "SQLAlchemy", "statement spans", 0, version="2.0.23", try_=try_, instance="w1")
    store.set_coverage("shop", "SQLAlchemy", "statement spans", 0, version="2.0.23", try_=try_, instance="w2")
    store.set_coverage("shop", "Flask", "server spans", 1, version="3.1.0", try_="x", instance="w1")  # seen: not a blind spot
    spot = {"service": "shop", "library": "SQLAlchemy", "version": "2.0.23", "what": "statement spans", "try": try_}
    assert store.health()["blind_spots"] == [spot]  # one entry for two processes
    store.set_coverage("shop", "SQLAlchemy", "statement spans", 1, version="2.0.23", try_=try_, instance="w1")
    assert store.blind_spots() == [spot]  # still blind in w2
    clock.t += COVERAGE_TTL_S - 1
    store.set_coverage("shop", "SQLAlchemy", "statement spans", 1, version="2.0.23", try_=try_, instance="w2")  # fixed in w2
    assert store.blind_spots() == []
    store.set_coverage("billing", "confluent-kafka", "consumer lag", 0, version="2.6.0", try_="y", instance="c1")
    clock.t += COVERAGE_TTL_S + 1  # the consumer process went away
    assert store.blind_spots() == []
    assert [(c["library"], c["value"]) for c in store.coverage()] == []
    store.set_coverage("shop", "Flask", "server spans", 1, version="3.1.0", try_="x", instance="w1")
    assert store.coverage() == [{"service": "shop", "library": "Flask", "version": "3.1.0", "what": "server spans", "try": "x", "value": 1.0}]
