"""SQLite persistence: round trip of closed buckets, restart keeps aggregates, retention, bad rows."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from chokepoint.collector.persistence import SqlitePersistence, bucket_from_bytes, bucket_to_bytes
from chokepoint.collector.store import Store, StoreConfig


class Clock:
    def __init__(self, t: float = 50_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def filled_store(clock) -> Store:
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    store.add_requests("shop", "/a", [0.01] * 90 + [0.2] * 10, errors=3)
    store.add_dependency_calls("shop", "db", "SELECT ?", [0.002] * 5, errors=1)
    store.add_breakdown("shop", "/a", {"db": 0.5, "self": 1.5}, requests=100)
    store.set_pool("shop", "db", "main", used=7, max=10, pending=2)
    store.set_pool("shop", "worker", "gunicorn", max=3, processes=4)
    store.add_pool_waits("shop", "db", "main", [0.05, 0.3])
    store.add_pool_timeouts("shop", "db", "main", 1)
    store.set_breaker_state("shop", "payments", "half_open")
    store.add_breaker_calls("shop", "payments", "rejected", 4)
    store.record_consumer_offsets("g", "orders", 1, 100, 160, clock.t)
    store.set_runtime("shop", cpu=0.4, rss=5e7, threads=9, run_queue_wait=0.3)
    store.add_counter("shop", "chokepoint.http.client.retries", "api", 2)
    return store


def test_bucket_bytes_round_trip_keeps_every_aggregate():
    clock = Clock()
    store = filled_store(clock)
    clock.t += 10
    store.flush_due()
    [bucket] = store.closed_buckets()
    back = bucket_from_bytes(bucket_to_bytes(bucket))
    assert back.start == bucket.start
    assert back.routes[("shop", "/a")].sketch.bins == bucket.routes[("shop", "/a")].sketch.bins
    assert back.routes[("shop", "/a")].errors == 3
    assert back.deps[("shop", "db", "SELECT ?")].count == 5
    assert back.breakdown[("shop", "/a")].all == {"db": 0.5, "self": 1.5}
    pool = back.pools[("shop", "db", "main")]
    assert (pool.used, pool.max, pool.pending, pool.timeouts, pool.wait.count) == (7, 10, 2, 1, 2)
    assert (back.pools[("shop", "worker", "gunicorn")].max, back.pools[("shop", "worker", "gunicorn")].processes) == (3, 4)
    assert back.breakers[("shop", "payments")].state == 1 and back.breakers[("shop", "payments")].calls == {"rejected": 4}
    assert back.lag[("g", "orders", 1)].lag == 60
    assert (back.runtime["shop"].cpu, back.runtime["shop"].run_queue_wait) == (0.4, 0.3)
    assert back.counters[("shop", "chokepoint.http.client.retries", "api")] == 2
    with pytest.raises(ValueError):
        bucket_from_bytes(b"garbage")


def test_runtime_rows_written_before_run_queue_wait_still_load():
    clock = Clock()
    store = filled_store(clock)
    clock.t += 10
    store.flush_due()
    [bucket] = store.closed_buckets()
    doc = json.loads(zlib.decompress(bucket_to_bytes(bucket)))
    doc["runtime"] = [row[:7] for row in doc["runtime"]]  # the row as the previous release wrote it
    back = bucket_from_bytes(zlib.compress(json.dumps(doc).encode()))
    assert (back.runtime["shop"].cpu, back.runtime["shop"].run_queue_wait) == (0.4, None)


def test_restart_keeps_aggregates_and_loses_at_most_the_open_bucket(tmp_path):
    path = tmp_path / "store.sqlite3"
    clock = Clock()
    store = filled_store(clock)
    clock.t += 10
    store.flush_due()
    store.add_requests("shop", "/a", [0.5])  # lands in the open bucket: not written
    persistence = SqlitePersistence(path)
    assert persistence.flush(store) == 1
    assert persistence.flush(store) == 0  # each closed bucket is written once
    persistence.close()

    restarted = Store(StoreConfig(bucket_seconds=10), clock=clock)
    again = SqlitePersistence(path)
    assert again.load_into(restarted) == 1
    before = {k: v for k, v in filled_store(Clock()).endpoints("shop", 3600)[0].items() if k != "rps"}
    after = {k: v for k, v in restarted.endpoints("shop", 3600)[0].items() if k != "rps"}
    assert after == before
    assert restarted.pools()[0]["used"] == 7
    assert restarted.breakers()[0]["state"] == "half_open"
    assert restarted.consumer_lag()[0]["lag"] == 60
    # new data after the restart goes to new buckets and is written on the next flush
    clock.t += 10
    restarted.add_requests("shop", "/a", [0.01])
    clock.t += 10
    restarted.flush_due()
    assert again.flush(restarted) == 1
    assert again.bucket_count() == 2
    again.close(restarted)
    again.close(restarted)  # idempotent


def test_disk_retention_prunes_old_rows_and_memory_retention_limits_the_load(tmp_path):
    path = tmp_path / "store.sqlite3"
    clock = Clock()
    cfg = StoreConfig(bucket_seconds=10, memory_retention_s=100, disk_retention_s=1000)
    store = Store(cfg, clock=clock)
    persistence = SqlitePersistence(path)
    for _ in range(3):
        store.add_requests("shop", "/a", [0.01])
        clock.t += 10
        store.flush_due()
        persistence.flush(store)
    assert persistence.bucket_count() == 3
    clock.t += 500
    fresh = Store(cfg, clock=clock)
    assert SqlitePersistence(path).load_into(fresh) == 0  # on disk, but older than the memory retention
    clock.t += 1000
    store.add_requests("shop", "/a", [0.01])
    clock.t += 10
    store.flush_due()
    persistence.flush(store)
    assert persistence.bucket_count() == 1  # the three old rows pruned
    persistence.close()


def test_a_corrupt_row_is_skipped_and_counted(tmp_path):
    path = tmp_path / "store.sqlite3"
    clock = Clock()
    store = filled_store(clock)
    clock.t += 10
    store.flush_due()
    p = SqlitePersistence(path)
    p.flush(store)
    p.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO buckets (start, data, written_at) VALUES (?, ?, ?)", (clock.t - 5, b"\x00broken", clock.t))
    loaded = SqlitePersistence(path)
    fresh = Store(StoreConfig(bucket_seconds=10), clock=clock)
    assert loaded.load_into(fresh) == 1
    assert loaded.load_errors == 1
    loaded.close()


def test_graceful_restart_keeps_the_open_bucket(tmp_path):
    path = tmp_path / "store.sqlite3"
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    store.add_requests("shop", "/a", [0.01] * 3)
    p = SqlitePersistence(path)
    p.close(store)  # graceful: the open bucket is saved too
    # restarted within the same 10 s interval: the data is live again and keeps growing
    clock.t += 2
    again = Store(StoreConfig(bucket_seconds=10), clock=clock)
    p2 = SqlitePersistence(path)
    assert p2.load_into(again) == 1
    again.add_requests("shop", "/a", [0.02])
    assert again.endpoints()[0]["count"] == 4
    assert again.closed_buckets() == []
    clock.t += 10
    again.flush_due()
    assert p2.flush(again) == 1
    p2.close(again)
    # restarted much later: the bucket saved open comes back closed, nothing is counted twice
    clock.t += 100
    third = Store(StoreConfig(bucket_seconds=10), clock=clock)
    p3 = SqlitePersistence(path)
    assert p3.load_into(third) == 1
    assert third.endpoints(window_s=3600)[0]["count"] == 4
    p3.close(third)


def test_open_bucket_saved_at_shutdown_is_closed_on_a_later_start(tmp_path):
    path = tmp_path / "store.sqlite3"
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    store.add_requests("shop", "/a", [0.01] * 2)
    SqlitePersistence(path).close(store)
    clock.t += 60
    later = Store(StoreConfig(bucket_seconds=10), clock=clock)
    p = SqlitePersistence(path)
    assert p.load_into(later) == 1
    assert later.endpoints(window_s=3600)[0]["count"] == 2
    assert p.bucket_count() == 1  # written to the closed-bucket table right away
    p.close()
    assert SqlitePersistence(path).load_into(Store(StoreConfig(bucket_seconds=10), clock=clock)) == 1


def test_server_wait_gauges_and_queue_waits_survive_the_round_trip_and_old_rows_load():
    from chokepoint.collector.sketch import Sketch

    clock = Clock()
    store = filled_store(clock)
    store.set_runtime("shop", accept_backlog=12, accept_backlog_max=128, accept_rate=30.0, loop_busy=0.9, loop_stall_max=0.2, gc_cpu=0.04)
    waits = Sketch()
    waits.add_many([0.05, 0.5])
    store.merge_queue_wait("shop", "/a", waits)
    clock.t += 10
    store.flush_due()
    [bucket] = store.closed_buckets()
    back = bucket_from_bytes(bucket_to_bytes(bucket))
    r = back.runtime["shop"]
    assert (r.accept_backlog, r.accept_backlog_max, r.accept_rate, r.loop_busy, r.loop_stall_max, r.gc_cpu) == (12, 128, 30.0, 0.9, 0.2, 0.04)
    assert back.queue_waits[("shop", "/a")].count == 2
    doc = json.loads(zlib.decompress(bucket_to_bytes(bucket)))
    doc["runtime"] = [row[:8] for row in doc["runtime"]]  # rows as the previous release wrote them
    del doc["queue_waits"]
    old = bucket_from_bytes(zlib.compress(json.dumps(doc).encode()))
    assert (old.runtime["shop"].run_queue_wait, old.runtime["shop"].accept_backlog, old.queue_waits) == (0.3, None, {})
