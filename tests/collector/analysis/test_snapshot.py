"""build_snapshot: the store's window as the rules read it, and the evidence an analysis draws from it."""

from __future__ import annotations

import random
import re

import pytest

from chokepoint.collector.analysis import Analyzer, AnalyzerConfig
from chokepoint.collector.analysis.snapshot import build_snapshot
from chokepoint.collector.catalog import Kind
from chokepoint.collector.store import Store, StoreConfig
from tests.collector.test_analyzer import Clock, _lognormal

SVC = "blog"
POOL = "sqlalchemy:postgresql"


def fed_store(feed, seconds: int = 90) -> tuple[Store, Clock]:
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=5), clock=clock)
    rng = random.Random(3)
    for i in range(seconds):
        clock.t += 1
        feed(store, rng, i)
        store.flush_due()
    return store, clock


def http_call_inside_a_transaction(store, rng, i):
    """Issue 13 item 5: SQLAlchemy on PostgreSQL, an HTTP call inside the transaction."""
    store.add_requests(SVC, "/posts", _lognormal(rng, 1.0, 10))
    store.add_breakdown(SVC, "/posts", {"pool_wait": 7.0, "http:api.example": 2.8, "db": 0.1, "self": 0.1}, slow=True, requests=10)
    store.add_dependency_calls(SVC, "db", "postgresql", _lognormal(rng, 1.0, 10))  # the connection/transaction span
    store.add_dependency_calls(SVC, "db", "SELECT posts", _lognormal(rng, 0.002, 30))
    store.add_dependency_calls(SVC, "db", "connect", _lognormal(rng, 0.15, 1) if i < 3 else [])  # start-up connects
    # item 10: the gauges peak mid-window and read 0/15 at its end
    store.set_pool(SVC, "db", POOL, used=15 if i < 80 else 0, max=15, pending=6 if i < 80 else 0)
    store.add_pool_waits(SVC, "db", POOL, _lognormal(rng, 0.7, 10))


def test_db_targets_say_whether_they_are_statements():
    store, _ = fed_store(http_call_inside_a_transaction)
    snap = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120))
    assert {t: d.statement for (_s, k, t), d in snap.deps.items() if k == "db"} == {"postgresql": False, "SELECT posts": True, "connect": False}
    assert [t for t, _ in snap.statements_of(SVC)] == ["SELECT posts"]


def test_pool_gauges_are_the_state_now_and_the_peaks_beside_the_wait_percentile():
    store, _ = fed_store(http_call_inside_a_transaction)
    (pool,) = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).pools
    assert store.pools(60)[0]["used"] == 0  # the latest gauge: what the evidence used to show next to an 800 ms wait
    # 15 busy and 6 waiting until 10 s before the end, then none: the latest third is draining
    assert pool.max == 15 and 0 < pool.used < 15 / 2 and 0 < pool.pending < 6 / 2
    assert (pool.used_peak, pool.pending_peak) == (15, 6)  # the window's extremes, beside its wait p99
    assert pool.wait_p99_ms > 700


def test_a_pool_that_filled_up_late_in_the_window_reads_full():
    """Saturated for the last 20 s of a 60 s window: the state now, not a third of it."""

    def filled(store, rng, i):
        store.add_requests(SVC, "/a", [0.01] * 5)
        store.set_pool(SVC, "worker", "anyio-default", used=16 if i >= 70 else 1, max=16, pending=8 if i >= 70 else 0)

    store, _ = fed_store(filled)
    (pool,) = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).pools
    assert (pool.used, pool.pending) == (16, 8)


def test_transaction_spans_make_no_slow_query_and_no_query_time():
    store, _ = fed_store(http_call_inside_a_transaction)
    findings = Analyzer(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).analyze()
    assert Kind.SLOW_QUERY not in {f.kind for f in findings}
    (pool,) = [f for f in findings if f.kind == Kind.DB_POOL_SATURATION]
    assert pool.evidence["query_p99_ms"] < 5 and pool.evidence["pool_used"] == 15 and pool.evidence["pending"] == 6
    assert re.search(r"statements themselves take [1-5] ms", pool.summary) and "15/15 busy at peak, 6 waiting at peak" in pool.summary


def test_runtime_signals_of_the_window():
    def feed(store, rng, i):
        store.add_requests(SVC, "/a", [0.01] * 5)
        extra = {
            "loop_busy": 0.5,
            "loop_stall_max": 0.2 if 65 <= i < 80 else 0.05,
            "gc_cpu": 0.02,
            "accept_backlog": 8.0,
            "accept_backlog_max": 128.0,
            "accept_rate": 20.0,
        }
        try:
            store.set_runtime(SVC, cpu=0.3, run_queue_wait=0.1, rss=100e6, **extra)
        except TypeError:  # a store without these gauges yet
            store.set_runtime(SVC, cpu=0.3, run_queue_wait=0.1, rss=100e6)

    store, clock = fed_store(feed)
    rt = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).runtime[SVC]
    assert (rt.cpu, rt.run_queue_wait) == (0.3, 0.1)
    assert rt.first_seen_s is not None and clock.t - rt.first_seen_s >= 85
    assert len(rt.rss) == 13 and rt.rss[-1][1] == 100e6
    if rt.loop_busy is not None:
        assert (rt.loop_busy, rt.loop_stall_max_s, rt.accept_backlog, rt.accept_backlog_max, rt.accept_rate) == (0.5, 0.2, 8.0, 128.0, 20.0)
        assert rt.gc_cpu == pytest.approx(0.02)


def test_a_pool_resized_in_the_window_has_its_new_size():
    """The shop's worker_pool_saturation switch shrinks anyio's limiter 16 → 4 mid-window."""

    def shrunk(store, rng, i):
        store.add_requests(SVC, "/a", [0.01] * 5)
        store.set_pool(SVC, "worker", "anyio-default", used=3 if i < 60 else 4, max=16 if i < 60 else 4, pending=0 if i < 60 else 20)

    store, _ = fed_store(shrunk)
    (pool,) = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).pools
    assert pool.max == 4 and pool.used == 4 and pool.pending == 20  # the latest third is all after the resize


def test_a_restarted_process_is_young_again():
    # the process restarts 70 s into the run: RSS falls from 300 MB to 60 MB, then the new one warms up
    def feed(store, rng, i):
        store.add_requests(SVC, "/a", [0.01] * 5)
        store.set_runtime(SVC, cpu=0.1, rss=(300e6 if i < 70 else 60e6 + (i - 70) * 1e6))

    store, clock = fed_store(feed)
    rt = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).runtime[SVC]
    assert 15 <= clock.t - rt.first_seen_s <= 25


def test_two_processes_reporting_in_turn_are_no_restart():
    def feed(store, rng, i):
        store.add_requests(SVC, "/a", [0.01] * 5)
        store.set_runtime(SVC, cpu=0.1, rss=(50e6 if i % 2 else 150e6))  # a gunicorn master and its worker

    store, clock = fed_store(feed)
    rt = build_snapshot(store, AnalyzerConfig(window_s=60, baseline_window_s=120)).runtime[SVC]
    assert clock.t - rt.first_seen_s >= 85
