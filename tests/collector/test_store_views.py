"""The store's query views (``store_views``): window merges, JSON shapes, series for dashboards."""

from __future__ import annotations

import pytest

from chokepoint.collector.store import TIMESERIES_METRICS
from tests.collector.otlp_builders import T0


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
    assert s["points"] == [[T0, 1.0], [T0 + 10, 4.0]]
    clock.t += 5
    [s] = store.timeseries("rps", service="shop", target="/a")
    assert s["labels"] == {"service": "shop", "route": "/a"}
    assert s["points"] == [[T0, 1.0], [T0 + 10, 2.0]]
    [p99] = store.timeseries("latency_p99_ms")
    assert [round(v) for _t, v in p99["points"]] == [10, 20]
    [cpu] = store.timeseries("cpu_utilization", service="shop")
    assert cpu["points"] == [[T0, 0.5], [T0 + 10, 0.9]]
    [waited] = store.timeseries("cpu_run_queue_wait", service="shop")
    assert waited["points"] == [[T0 + 10, 0.4]]  # no value in the first bucket: no point
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
    assert heat["times"] == [T0, T0 + 10]
    assert len(heat["le_ms"]) == len(hist)
    assert [sum(row) for row in heat["counts"]] == [5, 1]
    assert store.histogram("shop", "/none") == [] and store.heatmap("shop", "/none")["times"] == []


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
