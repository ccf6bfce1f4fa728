"""The bucket ring (``bucket_ring``): closing, retention, windows and baselines, through the
store and on ``BucketRing`` alone."""

from __future__ import annotations

import pytest

from chokepoint.collector.bucket_ring import BucketRing
from chokepoint.collector.store import Store, StoreConfig
from tests.collector.otlp_builders import T0


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
    assert [b.start for b in store.buckets(3600)] == [T0, T0 + 300]


def test_ring_alone_closes_restores_and_measures_its_windows(clock):
    ring = BucketRing(StoreConfig(bucket_seconds=10, memory_retention_s=60), clock)
    assert ring.effective_window(60) == 60.0 and ring.open_copy() is None  # no data yet: the whole window
    clock.t += 3
    ring.open().counters[("shop", "retries", "api")] = 2.0
    assert ring.effective_window(60) == 1.0  # from the first data, 0 s ago
    clock.t += 7  # the bucket's interval has passed
    assert ring.open_copy() is None and len(ring) == 1
    ring.flush_due()
    assert ring.closed_upto == T0 + 10 and [b.start for b in ring.closed_buckets()] == [T0]
    assert ring.totals_with_open().counters == {("shop", "retries", "api"): 2.0}
    assert ring.effective_window(60) == 7.0  # first data at T0 + 3, now T0 + 10
    # a persisted bucket comes back and merges; one past the retention is refused
    saved = ring.closed_buckets()[0]
    assert ring.restore(saved) is True and ring.by_start[T0].counters[("shop", "retries", "api")] == 4.0
    assert ring.first_data_s == T0  # the restored bucket's start is earlier than the first data
    clock.t += 100
    assert ring.restore(saved) is False
    ring.flush_due()
    assert len(ring) == 0 and ring.totals_with_open().counters == {("shop", "retries", "api"): 2.0}  # totals outlive retention


def test_window_list_with_an_end_is_a_baseline_and_without_one_includes_the_open_bucket(clock):
    ring = BucketRing(StoreConfig(bucket_seconds=10), clock)
    for _ in range(4):
        ring.open()
        clock.t += 10
    ring.open()
    assert [b.start for b in ring.window_list(20)] == [T0 + 20, T0 + 30, T0 + 40]  # the low edge's bucket, the open one
    assert [b.start for b in ring.window_list(20, end_s=T0 + 30)] == [T0 + 10, T0 + 20]
    assert ring.is_open_start(T0 + 40) and not ring.is_open_start(T0 + 30)
