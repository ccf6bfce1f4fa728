"""The ingestor as one: spans and metric points of the same service meet through the authority
rule (metrics win over spans), and neither path lets hostile input through."""

from __future__ import annotations

import os

from chokepoint.instrument import signals as sig
from tests.collector.otlp_builders import CLIENT, DELTA, SERVER, exp_hist, explicit_hist, metrics_request, number, one, span, traces_request


def test_agent_sampled_traces_are_kept_but_not_counted(ingestor, store):
    # the agent sends chokepoint.* metrics and the route histogram for 100 % of requests
    ingestor.consume_metrics(metrics_request("agent-app", [number(sig.THREADS if hasattr(sig, "THREADS") else sig.PROCESS_THREAD_COUNT, 5)]))
    ingestor.consume_metrics(metrics_request("agent-app", [number(sig.AGENT_DROPPED_SPANS, 0, kind="sum", temporality=DELTA)]))
    tid = os.urandom(16)
    root = span("GET /a", SERVER, 300, {"http.route": "/a"}, trace_id=tid)
    db = span("SELECT", CLIENT, 250, {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, tid, root.span_id)
    ingestor.consume_traces(traces_request("agent-app", [db, root]))
    assert store.endpoints("agent-app") == [] and store.dependencies() == []
    [t] = store.traces()
    assert t["trace_id"] == tid.hex() and t["keep_reason"] == "random"  # no route percentiles yet
    # an explicit keep reason on a span wins, for any SDK
    marked = span("GET /b", SERVER, 3, {"http.route": "/b", sig.ATTR_KEEP_REASON: "slow"})
    ingestor.consume_traces(traces_request("foreign", [marked]))
    assert store.traces()[0]["keep_reason"] == "slow" and store.endpoints("foreign") == []


def test_metric_authority_stops_span_double_counting(ingestor, store):
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [3, 0], {"http.route": "/a"})]))
    ingestor.consume_traces(traces_request("shop", [span("GET /a", SERVER, 20, {"http.route": "/a"}) for _ in range(5)]))
    ingestor.consume_traces(traces_request("shop", [span("SELECT", CLIENT, 2, {"db.system": "postgresql", "db.statement": "SELECT 1"})]))
    assert one(store.endpoints(), route="/a")["count"] == 3  # metric only; the 5 spans are not added
    assert one(store.dependencies(), kind="db")["count"] == 1  # no DB metric from shop: spans count


def test_hostile_values_are_rejected_or_harmless(ingestor, store):
    huge = exp_hist(sig.HTTP_SERVER_DURATION, 0, 2_000_000, [1], {"http.route": "/huge"})  # 2^2e6 s overflows
    nan = number(sig.PROCESS_CPU_UTILIZATION, float("nan"))
    odd = span("x", SERVER, 5, {"http.route": "/odd", "http.response.status_code": "not-a-number"})
    odd.attributes.add(key="http.request.method").value.array_value.values.add().string_value = "GET"
    short_id = span("x", SERVER, 5, {"http.route": "/bad"})
    short_id.trace_id = b"\x01\x02"
    m = ingestor.consume_metrics(metrics_request("shop", [huge, nan]))
    t = ingestor.consume_traces(traces_request("shop", [odd, short_id]))
    assert (m.accepted, m.rejected) == (0, 2) and (t.accepted, t.rejected) == (1, 1)
    assert [r["route"] for r in store.endpoints()] == ["/odd"] and store.endpoints()[0]["error_rate"] == 0.0
    assert store.timeseries("cpu_utilization") == []
