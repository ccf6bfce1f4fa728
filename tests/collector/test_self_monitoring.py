"""Self-monitoring (``self_monitoring``): the collector's own counters and the agents' coverage reports."""

from __future__ import annotations

import threading

from chokepoint.collector.self_monitoring import SelfMonitoring
from chokepoint.collector.store import COVERAGE_TTL_S


def test_health_counts(store):
    store.count_ingested("grpc", spans=10, points=3)
    store.count_rejected("http", "invalid_span", 2)
    store.count_dropped("queue_full")
    store.add_requests("shop", "/a", [0.01])
    h = store.health()
    assert h["status"] == "ok" and h["services"] == 1
    assert (h["spans_total"], h["metric_points_total"], h["rejected_total"], h["dropped_total"]) == (10, 3, 2, 1)


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


def test_counters_snapshot_is_a_copy_and_the_store_shows_the_same_counters(store):
    store.count_ingested("http", points=5)
    store.count_dropped("streams", 2)
    spans, points, rejected, dropped = store.counters_snapshot()
    assert (spans, points, rejected, dropped) == ({}, {"http": 5}, {}, {"streams": 2})
    dropped["streams"] = 99
    assert store.monitoring.dropped == {"streams": 2} and store.dropped is store.monitoring.dropped


def test_monitoring_alone_counts_under_the_lock_it_is_given(clock):
    monitoring = SelfMonitoring(threading.RLock(), clock)
    monitoring.count_rejected("grpc", "overload", 3)
    monitoring.count_rejected("grpc", "overload")
    monitoring.set_coverage("shop", "redis", "pool", 0, version="5.0", try_="z", instance=("shop", "a"))
    assert monitoring.rejected == {("grpc", "overload"): 4}
    assert monitoring.blind_spots() == [{"service": "shop", "library": "redis", "version": "5.0", "what": "pool", "try": "z"}]
