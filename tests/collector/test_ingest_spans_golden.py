"""The span path's store contents for a fixed, varied set of batches stay exactly what they were.

``consume_traces`` is a hot loop that gets tuned; this pins what it writes: route and
dependency sketches (counts, errors, quantiles), breakdowns, kept traces with their spans,
pending children joining their roots, agent-sampled traces, rejected spans and the ingest
counters — over 12 batches in 4 buckets, so the slow-trace p99 decision takes part.

The expected contents in ``data/ingest_spans_golden.json`` were written by the span path
before its tuning (regenerate only for an intended change of behaviour:
``.venv/bin/python tests/collector/test_ingest_spans_golden.py --write``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store, StoreConfig

GOLDEN = Path(__file__).with_name("data") / "ingest_spans_golden.json"
T0 = 1_800_000_000.0
NS = 1_000_000_000
SERVER, CLIENT, PRODUCER, INTERNAL = 2, 3, 4, 1
ROUTES = ["/orders/{id}", "/quote", "/cart", "/search", "/health"]


def _attrs(span, attrs: dict) -> None:
    for k, v in attrs.items():
        kv = span.attributes.add(key=k)
        if isinstance(v, int):
            kv.value.int_value = v
        else:
            kv.value.string_value = v


def _trace(rng: random.Random, start: float, service: str) -> list:
    """A root SERVER span and 0-4 children (db, http with a nested http, kafka, internal)."""
    tid = rng.getrandbits(128).to_bytes(16, "big")

    def span(name, kind, parent, t, ms, attrs, error=False):
        s = trace_pb2.Span(trace_id=tid, span_id=rng.getrandbits(64).to_bytes(8, "big"), parent_span_id=parent, name=name, kind=kind)
        s.start_time_unix_nano = int((start + t) * NS)
        s.end_time_unix_nano = int((start + t + ms / 1000) * NS)
        _attrs(s, attrs)
        if error:
            s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        return s

    route = rng.choice(ROUTES)
    status = 500 if rng.random() < 0.08 else 200
    root_attrs = {"http.route": route, "http.request.method": "GET", "http.response.status_code": status}
    if rng.random() < 0.2:  # older semantic conventions, no route: the path names it
        root_attrs = {"http.target": route.replace("{id}", str(rng.randrange(100))), "http.method": "GET", "http.status_code": status}
    if rng.random() < 0.05:
        root_attrs["chokepoint.keep_reason"] = "slow"
    root_ms = rng.lognormvariate(3.0, 0.8)
    root = span(f"GET {route}", SERVER, b"", 0.0, root_ms, root_attrs, error=rng.random() < 0.03)
    spans = [root]
    t = 0.0005
    for _ in range(rng.randrange(5)):
        ms = root_ms * rng.uniform(0.02, 0.2)
        pick = rng.randrange(4)
        if pick == 0:
            spans.append(span("SELECT", CLIENT, root.span_id, t, ms, {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders WHERE id = $1"}))
        elif pick == 1:
            outer = span(
                "GET", CLIENT, root.span_id, t, ms, {"http.request.method": "GET", "url.full": "http://pricing:8080/price", "server.address": "pricing"}
            )
            inner = span(
                "GET",
                CLIENT,
                outer.span_id,
                t,
                ms * 0.9,
                {
                    "http.request.method": "GET",
                    "url.full": "http://pricing:8080/price",
                    "server.address": "pricing",
                    "http.response.status_code": 503 if rng.random() < 0.1 else 200,
                },
            )
            spans += [outer, inner]
        elif pick == 2:
            spans.append(span("orders publish", PRODUCER, root.span_id, t, ms, {"messaging.system": "kafka", "messaging.destination.name": "orders"}))
        else:
            spans.append(span("render", INTERNAL, root.span_id, t, ms, {}))
        t += ms / 1000
    return spans


def batches() -> list[ExportTraceServiceRequest]:
    rng = random.Random(20261207)
    out = []
    held: list = []  # children of traces whose root comes in the next batch
    for b in range(12):
        req = ExportTraceServiceRequest()
        for service, resource in (("shop", {}), ("agent-svc", {"telemetry.distro.name": "chokepoint"})):
            rs = req.resource_spans.add()
            _attrs(rs.resource, {"service.name": service, **resource})
            spans = rs.scope_spans.add().spans
            if service == "shop":
                spans.extend(held)
                held = []
            for _ in range(60 if service == "shop" else 6):
                trace = _trace(rng, T0 + b * 5 + rng.random(), service)
                if service == "shop" and len(trace) > 1 and rng.random() < 0.1:
                    spans.extend(trace[1:])  # children first, root in the next batch
                    held.append(trace[0])
                else:
                    spans.extend(trace)
            if b == 3 and service == "shop":
                bad = spans.add(trace_id=b"short", span_id=b"\x01" * 8, name="bad id")
                bad.end_time_unix_nano = 1
        out.append(req)
    return out


def store_contents() -> dict:
    now = [T0]
    store = Store(StoreConfig(bucket_seconds=10.0), clock=lambda: now[0])
    ingestor = Ingestor(store)
    results = []
    for i, req in enumerate(batches()):
        now[0] = T0 + i * 5 + 4.0
        store.flush_due()
        r = ingestor.consume_traces(ExportTraceServiceRequest.FromString(req.SerializeToString()))
        results.append([r.accepted, r.rejected, r.error_message])
    window = 3600
    endpoints = store.endpoints(None, window_s=window)
    doc = {
        "results": results,
        "endpoints": endpoints,
        "dependencies": store.dependencies(window_s=window),
        "breakdown": {f"{e['service']} {e['route']}": store.breakdown(e["service"], e["route"], window_s=window) for e in endpoints},
        "traces": store.traces(limit=10_000),
        "counters": [sorted((str(k), v) for k, v in part.items()) for part in store.counters_snapshot()],
    }
    return json.loads(json.dumps(doc, sort_keys=True, default=str))


def test_span_path_store_contents_are_unchanged():
    got = store_contents()
    want = json.loads(GOLDEN.read_text())
    assert got["results"] == want["results"]
    assert len(got["traces"]) == len(want["traces"]) > 50
    for key in want:
        assert got[key] == want[key], key


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(store_contents(), sort_keys=True, indent=1) + "\n")
