"""Spans → route/dependency latency, breakdown and kept traces (``ingest_spans``), with
hand-built protobuf requests and exact expected values."""

from __future__ import annotations

import os

import pytest

from tests.collector.otlp_builders import CLIENT, PRODUCER, SERVER, one, span, traces_request


def test_server_spans_current_semconv(ingestor, store):
    spans = [
        span("GET /items/{id}", SERVER, 20, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 200}) for _ in range(8)
    ]
    spans += [
        span("GET /items/{id}", SERVER, 40, {"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 503}) for _ in range(2)
    ]
    result = ingestor.consume_traces(traces_request("shop", spans))
    assert (result.accepted, result.rejected) == (10, 0)
    row = one(store.endpoints(), route="/items/{id}")
    assert row["service"] == "shop" and row["count"] == 10 and row["error_rate"] == 0.2
    assert row["p50_ms"] == pytest.approx(20, rel=0.01) and row["p999_ms"] == pytest.approx(40, rel=0.01)
    assert store.health()["spans_total"] == 10


def test_server_spans_old_semconv_fold_ids_out_of_the_path(ingestor, store):
    spans = [
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/42?x=1", "http.status_code": 500}),
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/7", "http.status_code": 200}),
        span("GET", SERVER, 10, {"http.method": "GET", "http.target": "/users/7/orders/9f86d081884c7d659a2feaa0c55ad015", "http.status_code": 200}),
    ]
    ingestor.consume_traces(traces_request("legacy", spans))
    rows = {r["route"]: (r["count"], r["error_rate"]) for r in store.endpoints("legacy")}
    assert rows == {"/users/{id}": (2, 0.5), "/users/{id}/orders/{id}": (1, 0.0)}


def test_client_spans_become_dependencies_in_both_semconv_generations(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 100, {"http.route": "/a"}, trace_id=tid)
    pid = root.span_id
    children = [
        span("SELECT", CLIENT, 5, {"db.system": "postgresql", "db.statement": "SELECT * FROM t WHERE id = 42"}, tid, pid),
        span("SELECT", CLIENT, 7, {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM t WHERE id = 7"}, tid, pid),
        span("SELECT", CLIENT, 1, {"db.system.name": "postgresql", "db.query.summary": "SELECT t"}, tid, pid),
        span("GET", CLIENT, 30, {"http.method": "GET", "http.url": "http://api.example.com/x?token=s", "http.status_code": 502}, tid, pid),
        span(
            "GET",
            CLIENT,
            20,
            {"http.request.method": "GET", "server.address": "127.0.0.1", "server.port": 8081, "url.full": "http://127.0.0.1:8081/"},
            tid,
            pid,
        ),
        span("orders send", PRODUCER, 2, {"messaging.system": "kafka", "messaging.destination": "orders"}, tid, pid),
        span("orders send", PRODUCER, 3, {"messaging.system": "kafka", "messaging.destination.name": "orders"}, tid, pid),
    ]
    ingestor.consume_traces(traces_request("shop", [*children, root]))
    deps = {(d["kind"], d["target"]): (d["count"], d["error_rate"]) for d in store.dependencies()}
    assert deps == {
        ("db", "SELECT * FROM t WHERE id = ?"): (2, 0.0),
        ("db", "SELECT t"): (1, 0.0),
        ("http", "api.example.com"): (1, 1.0),
        ("http", "127.0.0.1:8081"): (1, 0.0),
        ("kafka", "orders"): (2, 0.0),
    }
    # the whole trace is in the batch: breakdown per component, self = the rest
    bd = store.breakdown("shop", "/a")
    assert bd["requests"] == 1
    assert bd["all"] == pytest.approx({"db": 13.0, "http:api.example.com": 30.0, "http:127.0.0.1:8081": 20.0, "kafka": 5.0, "self": 32.0})


def test_invalid_spans_are_rejected_and_the_rest_kept(ingestor, store):
    bad = span("x", SERVER, 10, {"http.route": "/a"})
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1
    good = span("x", SERVER, 10, {"http.route": "/a"})
    result = ingestor.consume_traces(traces_request("shop", [bad, good]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert "end before start" in result.error_message
    assert store.rejected == {("otlp", "invalid_span"): 1}
    assert one(store.endpoints(), route="/a")["count"] == 1


def test_foreign_traces_kept_when_errored_or_slower_than_route_p99(ingestor, store):
    fast = [span("GET /a", SERVER, 10 + i % 5, {"http.route": "/a"}) for i in range(50)]
    ingestor.consume_traces(traces_request("shop", fast))
    assert store.traces() == []  # nothing kept yet: no errors, and p99 unknown before 20 requests
    tid = os.urandom(16)
    slow_root = span("GET /a", SERVER, 500, {"http.route": "/a"}, trace_id=tid)
    child = span("SELECT", CLIENT, 450, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, slow_root.span_id, start_ms=10)
    failed = span("GET /a", SERVER, 5, {"http.route": "/a", "http.response.status_code": 500})
    normal = span("GET /a", SERVER, 11, {"http.route": "/a"})
    ingestor.consume_traces(traces_request("shop", [child, slow_root, failed, normal]))
    kept = {t["trace_id"]: t for t in store.traces()}
    assert set(kept) == {tid.hex(), failed.trace_id.hex()}
    slow = kept[tid.hex()]
    assert (slow["keep_reason"], slow["route"], slow["duration_ms"], slow["error"]) == ("slow", "/a", 500.0, False)
    assert [(s["name"], s["kind"], s["start_offset_ms"]) for s in slow["spans"]] == [("SELECT", "client", 10.0), ("GET /a", "server", 0.0)]
    assert slow["spans"][0]["attributes"]["db.statement"] == "SELECT 1"
    assert kept[failed.trace_id.hex()]["keep_reason"] == "error"
    # a late span of a kept trace is appended
    late = span("GET", CLIENT, 1, {"http.method": "GET", "server.address": "x"}, tid, slow_root.span_id)
    ingestor.consume_traces(traces_request("shop", [late]))
    assert len(next(t for t in store.traces() if t["trace_id"] == tid.hex())["spans"]) == 3


def test_children_exported_before_their_root_join_the_trace(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 100, {"http.route": "/a", "http.response.status_code": 500}, trace_id=tid)
    db = span("SELECT", CLIENT, 60, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, root.span_id)
    ingestor.consume_traces(traces_request("shop", [db]))  # batch 1: the child only
    assert store.traces() == [] and one(store.dependencies(), kind="db")["count"] == 1
    ingestor.consume_traces(traces_request("shop", [root]))  # batch 2: the root
    [t] = store.traces()
    assert t["keep_reason"] == "error" and [s["name"] for s in t["spans"]] == ["SELECT", "GET /a"]
    assert store.breakdown("shop", "/a")["all"] == pytest.approx({"db": 60.0, "self": 40.0})
    assert one(store.dependencies(), kind="db")["count"] == 1  # not counted twice
    assert ingestor.spans._pending_spans == 0


def test_pending_children_are_bounded(ingestor, store):
    ingestor.spans.max_pending_spans = 3
    for _ in range(5):
        ingestor.consume_traces(traces_request("shop", [span("SELECT", CLIENT, 1, {"db.system": "postgresql"}, parent=os.urandom(8))]))
    assert ingestor.spans._pending_spans == 3 and len(ingestor.spans._pending) == 3


def test_nested_outbound_spans_count_once(ingestor, store):
    tid = os.urandom(16)
    root = span("GET /n", SERVER, 50, {"http.route": "/n"}, trace_id=tid)
    orm = span("SELECT", CLIENT, 20, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, root.span_id)
    driver = span("SELECT", CLIENT, 19, {"db.system": "postgresql", "db.statement": "SELECT 1"}, tid, orm.span_id)
    requests_span = span("GET", CLIENT, 10, {"http.method": "GET", "server.address": "api"}, tid, root.span_id)
    urllib3_span = span("GET", CLIENT, 9, {"http.method": "GET", "server.address": "api"}, tid, requests_span.span_id)
    ingestor.consume_traces(traces_request("shop", [driver, orm, urllib3_span, requests_span, root]))
    assert {(d["kind"], d["count"]) for d in store.dependencies()} == {("db", 1), ("http", 1)}
    assert store.breakdown("shop", "/n")["all"] == pytest.approx({"db": 20.0, "http:api": 10.0, "self": 20.0})
