"""The store's writes (``store_writes``): cardinality caps, metric sketches, analyzer counters,
consumer lag per source."""

from __future__ import annotations

from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import OTHER, Store, StoreConfig


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


def test_merge_requests_from_a_metric_sketch(store):
    s = Sketch()
    s.add_many([0.2] * 4)
    store.merge_requests("shop", "/m", s, errors=4)
    [row] = store.endpoints()
    assert row["count"] == 4 and row["error_rate"] == 1.0


def test_analyzer_counter_keys_are_capped(clock):
    store = Store(StoreConfig(max_dependencies_per_service=1), clock=clock)
    for i in range(6):
        store.add_counter("shop", "retries", f"host{i}", 1)
    counters = store.window(60).counters
    assert counters[("shop", "retries", OTHER)] == 2
    assert len(counters) == 5


def test_agent_and_pull_lag_sources_are_judged_separately(store, clock):
    # the pull monitor saw committed 120 a moment after the agent reported 100: no rewind
    for i in range(3):
        store.record_consumer_offsets("g", "t", 0, 100 + 50 * i, 200 + 50 * i, clock.t, source="agent")
        clock.t += 1
        store.record_consumer_offsets("g", "t", 0, 120 + 50 * i, 210 + 50 * i, clock.t, source="pull")
        clock.t += 9
    [row] = store.consumer_lag()
    assert row["source"] == "pull" and row["status"] == "OK"
