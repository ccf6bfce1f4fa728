"""The kept-trace buffer (``kept_traces``): bounded per trace and in all, oldest evicted, filterable."""

from __future__ import annotations

import threading

from chokepoint.collector.kept_traces import KeptTraces
from chokepoint.collector.store import Store, StoreConfig


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


def test_keeping_a_kept_trace_again_appends_and_fills_what_was_empty():
    dropped: list[tuple[str, int]] = []
    kept = KeptTraces(StoreConfig(max_spans_per_trace=3), threading.RLock(), lambda reason, n: dropped.append((reason, n)))
    kept.keep({"trace_id": "t", "service": "shop", "route": "", "error": False, "keep_reason": "random", "spans": [{"span_id": "a"}]})
    kept.keep({"trace_id": "t", "route": "/a", "error": True, "keep_reason": "slow", "spans": [{"span_id": "b"}, {"span_id": "c"}, {"span_id": "d"}]})
    [t] = kept.newest()
    assert (t["route"], t["error"], t["keep_reason"]) == ("/a", True, "random")  # filled, errored, the first reason stays
    assert [s["span_id"] for s in t["spans"]] == ["a", "b", "c"] and kept.spans == 3
    assert dropped == [("trace_too_large", 1)] and "t" in kept and len(kept) == 1
    t["spans"][0]["span_id"] = "changed"  # newest() hands out copies
    assert kept.newest()[0]["spans"][0]["span_id"] == "a"
