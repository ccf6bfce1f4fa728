"""The store as one object: its parts behind one lock, and the names other code imports from
``chokepoint.collector.store`` (the parts' own behaviour is tested in their modules' tests)."""

from __future__ import annotations

from chokepoint.collector import store as store_module
from chokepoint.collector.protocol import Bucket, LagPoint
from chokepoint.collector.store import Store, StoreConfig


def test_the_names_other_code_imports_stay_importable():
    for name in store_module.__all__:
        assert getattr(store_module, name) is not None, name
    assert {"Store", "StoreConfig", "OTHER", "TIMESERIES_METRICS", "COVERAGE_TTL_S", "Bucket", "RouteAgg"} <= set(store_module.__all__)


def test_every_part_shares_the_store_lock_config_and_clock(store, clock):
    assert store.kept._lock is store._lock and store.monitoring._lock is store._lock
    assert store._ring.config is store.config is store.kept.config and store._ring.clock is clock


def test_a_restored_bucket_brings_its_lag_samples_back(clock):
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    saved = Bucket(clock.t - 20)
    saved.lag[("g", "t", 0)] = LagPoint(committed_offset=5, log_end_offset=9, lag=4.0, timestamp_s=clock.t - 15, source="pull", status="OK")
    assert store.restore_bucket(saved) is True
    assert store._lag_samples[("g", "t", 0, "pull")][-1].committed_offset == 5
    assert store.closed_through() == clock.t - 10
    [row] = store.consumer_lag()
    assert (row["committed_offset"], row["log_end_offset"], row["source"]) == (5, 9, "pull")


def test_a_bucket_saved_at_shutdown_merges_back_into_the_open_one(store, clock):
    store.add_requests("shop", "/a", [0.01])
    saved = store.open_bucket()
    fresh = Store(StoreConfig(bucket_seconds=10), clock=clock)
    assert fresh.merge_into_open(saved) is True and fresh.endpoints()[0]["count"] == 1
    clock.t += 10  # the bucket is no longer the open one: it comes back closed
    later = Store(StoreConfig(bucket_seconds=10), clock=clock)
    assert later.merge_into_open(saved) is False and later.closed_through() == saved.start + 10
