"""The native span ingest core against the Python span walk: the same OTLP payloads, the same
store contents, bit for bit (sketch bins, counts, sums, min/max, errors, breakdown seconds,
kept traces, the pending buffer, the counters).

Payloads: the golden test's 12 batches (``test_ingest_spans_golden.batches``) and a seeded
generator of varied shapes (old and new semantic conventions, nested outbound spans, remote
parents, children before their root, agent-sampled and metric-authoritative services, zero
durations, string status codes, duplicate and bytes attributes, rejected spans, array values).
"""

from __future__ import annotations

import logging
import os
import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from chokepoint.collector import native_ingest
from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store, StoreConfig
from chokepoint.semconv import signals as sig
from tests.collector import test_ingest_spans_golden as golden
from tests.collector.otlp_builders import explicit_hist, kvs, metrics_request

NS = 1_000_000_000
T0 = 1_800_000_000.0
SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = 2, 3, 4, 5, 1


def test_the_core_is_built():
    # `make install` builds it (`make native`); without it the collector ingests in Python
    assert native_ingest.status()["native_ingest"] == "on", native_ingest.status()
    assert Store().health()["native_ingest"] == "on"


def _put(field, attrs: dict) -> None:
    """``otlp_builders.kvs`` plus the values it does not build: bytes, an array, no value."""
    for k, v in attrs.items():
        if isinstance(v, bytes | list) or v is None:
            a = field.add(key=k).value
            if isinstance(v, bytes):
                a.bytes_value = v
            elif isinstance(v, list):
                a.array_value.values.add().string_value = str(v[0])
        else:
            field.extend(kvs({k: v}))


class Shapes:
    """A seeded generator of traces in the shapes real SDKs send."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def ident(self, n: int) -> bytes:
        return self.rng.getrandbits(8 * n).to_bytes(n, "big")

    def span(self, tid, parent, name, kind, start, ms, attrs, error=False):
        s = trace_pb2.Span(trace_id=tid, span_id=self.ident(8), parent_span_id=parent, name=name, kind=kind)
        s.start_time_unix_nano = int(start * NS)
        s.end_time_unix_nano = s.start_time_unix_nano + int(ms * 1e6)
        _put(s.attributes, attrs)
        if error:
            s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        elif self.rng.random() < 0.3:
            s.status.code = trace_pb2.Status.STATUS_CODE_OK
        return s

    def server_attrs(self) -> dict:
        rng = self.rng
        status = rng.choice([200, 200, 200, 201, 404, 500, 503])
        pick = rng.randrange(6)
        if pick == 0:
            return {"http.target": f"/users/{rng.randrange(50)}/orders?x=1", "http.method": "GET", "http.status_code": str(status)}
        if pick == 1:
            return {"url.path": f"/items/{self.ident(8).hex()}", "http.request.method": "POST"}
        if pick == 2:
            return {"http.route": rng.choice(["api/articles/<int:pk>", "^api/x/$", "/cart"]), "http.response.status_code": status}
        if pick == 3:
            return {}  # the span name names the route
        return {"http.route": rng.choice(["/orders/{id}", "/quote", "/search"]), "http.request.method": "GET", "http.response.status_code": status}

    def child(self, tid, parent, start, ms) -> list:
        rng = self.rng
        pick = rng.randrange(9)
        err = rng.random() < 0.05
        if pick == 0:
            stmt = f"SELECT * FROM t WHERE id = {rng.randrange(20)} AND name = 'x{rng.randrange(3)}'"
            outer = self.span(tid, parent, "SELECT", CLIENT, start, ms, {"db.system": "postgresql", "db.statement": stmt}, err)
            inner = self.span(tid, outer.span_id, "execute", CLIENT, start, ms * 0.8, {"db.system.name": "postgresql", "db.query.text": stmt})
            return [outer, inner]
        if pick == 1:
            return [self.span(tid, parent, "q", CLIENT, start, ms, {"db.system.name": "mysql", "db.query.summary": "SELECT users"})]
        if pick == 2:
            return [self.span(tid, parent, "op", CLIENT, start, ms, {"db.system": "redis", "db.operation": rng.choice(["GET", "SET"])})]
        if pick == 3:
            url = rng.choice(["http://pricing:8080/p?q=1", "https://api.example.com/v1", "http://[::1]:9000/x", "http://bad:port/"])
            return [
                self.span(
                    tid, parent, "GET", CLIENT, start, ms, {"http.request.method": "GET", "url.full": url, "http.response.status_code": 502 if err else 200}
                )
            ]
        if pick == 4:
            attrs = {"http.method": "GET", "net.peer.name": "legacy", "net.peer.port": rng.choice([80, 8443, 443])}
            return [self.span(tid, parent, "GET", CLIENT, start, ms, attrs)]
        if pick == 5:
            kind = rng.choice([PRODUCER, CONSUMER])
            return [self.span(tid, parent, "orders send", kind, start, ms, {"messaging.system": "kafka", "messaging.destination.name": "orders"}, err)]
        if pick == 6:
            return [self.span(tid, parent, "publish", CLIENT, start, ms, {"messaging.system": "rabbitmq", "messaging.destination": "jobs"})]
        if pick == 7:
            return [self.span(tid, parent, "render", INTERNAL, start, ms, {"http.route": "/not-a-server"})]
        return [self.span(tid, parent, "weird", 0, start, 0.0, {})]

    def trace(self, start: float) -> list:
        rng = self.rng
        tid = self.ident(16)
        root_ms = rng.lognormvariate(2.5, 1.0)
        attrs = self.server_attrs()
        if rng.random() < 0.05:
            attrs[sig.ATTR_KEEP_REASON] = rng.choice(["slow", "error", ""])
        if rng.random() < 0.05:
            attrs["http.route"] = b"\x01\x02"  # bytes: hex
        parent = self.ident(8) if rng.random() < 0.15 else b""  # a remote parent
        root = self.span(tid, parent, f"GET {rng.choice(['/a', '/b'])}", SERVER, start, 0.0 if rng.random() < 0.03 else root_ms, attrs, rng.random() < 0.04)
        if rng.random() < 0.05:
            _put(root.attributes, {"http.route": "/dup"})  # a repeated key: the last wins
        out = [root]
        t = start
        for _ in range(rng.choice([0, 0, 1, 2, 3, 6])):
            ms = root_ms * rng.uniform(0.01, 0.3)
            out += self.child(tid, root.span_id, t, ms)
            t += ms / 1000
        return out


def varied_batches(seed: int = 7, n: int = 14) -> list[tuple[float, ExportTraceServiceRequest]]:
    g = Shapes(seed)
    out = []
    held: list = []
    for b in range(n):
        now = T0 + b * 4.0
        req = ExportTraceServiceRequest()
        for service, res_attrs in (
            ("shop", {}),
            ("agent-svc", {"telemetry.distro.name": "chokepoint-python"}),
            ("metric-svc", {}),
            (7, {}),
            ("shop", {"host.name": "b"}),
        ):
            rs = req.resource_spans.add()
            _put(rs.resource.attributes, {"service.name": service, **res_attrs})
            spans = rs.scope_spans.add().spans
            if service == "shop" and not res_attrs and held and b % 3 == 2:
                spans.extend(held)  # roots of traces whose children came earlier
                held = []
            for _ in range(g.rng.randrange(5, 25)):
                trace = g.trace(now - 1.0 + g.rng.random())
                if service == "shop" and len(trace) > 1 and g.rng.random() < 0.08:
                    spans.extend(trace[1:])
                    held.append(trace[0])
                else:
                    spans.extend(trace)
        if b == 5:
            bad = req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 3, name="short span id")
            bad.end_time_unix_nano = 5
            late = req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 8, name="ends before it starts")
            late.start_time_unix_nano, late.end_time_unix_nano = 10, 5
        if b == 9:
            span = req.resource_spans[0].scope_spans[0].spans[0]
            _put(span.attributes, {"http.request.method": ["GET"]})  # an array: the Python path takes it
        out.append((now, req))
    return out


def _golden_batches() -> list[tuple[float, ExportTraceServiceRequest]]:
    return [(golden.T0 + i * 5 + 4.0, req) for i, req in enumerate(golden.batches())]


def _sketch_state(agg) -> tuple:
    s = agg.sketch
    return (list(s.items()), s.count, s.sum, s.min, s.max, s.zero_count, dict(s.negative_bins), agg.errors)


def _pending_state(spans) -> dict:
    return {
        tid: [(svc, span.SerializeToString(), sorted(attrs.items(), key=str), dur, sampled, cls) for svc, span, attrs, dur, sampled, cls in recs]
        for tid, (_t, recs) in spans._pending.items()
    }


def run(batches, native: bool, monkeypatch) -> dict:
    """Feed the batches to a fresh store through one path; everything the span path writes."""
    now = [batches[0][0]]
    store = Store(StoreConfig(bucket_seconds=10.0), clock=lambda: now[0])
    ingestor = Ingestor(store)
    # metric-svc sends the route histogram: its SERVER spans must not count (the authority rule)
    now[0] -= 1.0
    ingestor.consume_metrics(metrics_request("metric-svc", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [2, 1], {"http.route": "/m"})]))
    results = []
    monkeypatch.setattr(native_ingest, "enabled", native)
    for t, req in batches:
        now[0] = t
        store.flush_due()
        body = req.SerializeToString()
        request = ExportTraceServiceRequest.FromString(body)
        r = native_ingest.consume_traces(ingestor.spans, request, None) if native else None
        if r is None:
            monkeypatch.setattr(native_ingest, "enabled", False)  # the fallback: the Python path
            r = ingestor.consume_traces(request)
            monkeypatch.setattr(native_ingest, "enabled", native)
        results.append((r.accepted, r.rejected, r.error_message))
    buckets = {}
    for b in store.buckets(10**9):
        buckets[b.start] = {
            "routes": [(k, _sketch_state(v)) for k, v in b.routes.items()],
            "deps": [(k, _sketch_state(v)) for k, v in b.deps.items()],
            "breakdown": [(k, list(v.all.items()), list(v.slow.items()), v.requests, v.slow_requests) for k, v in b.breakdown.items()],
        }
    return {
        "results": results,
        "buckets": buckets,
        "traces": store.traces(limit=10**6),
        "counters": store.counters_snapshot(),
        "pending": _pending_state(ingestor.spans),
    }


def _compare(batches, monkeypatch) -> dict:
    before = native_ingest.status()
    want = run(batches, False, monkeypatch)
    got = run(batches, True, monkeypatch)
    after = native_ingest.status()
    assert got["results"] == want["results"]
    for key in ("buckets", "traces", "counters", "pending"):
        assert got[key] == want[key], key
    fallbacks = {k: v - before["native_ingest_fallbacks"].get(k, 0) for k, v in after["native_ingest_fallbacks"].items()}
    return {"native": after["native_ingest_requests"] - before["native_ingest_requests"], "fallbacks": {k: v for k, v in fallbacks.items() if v}, "state": want}


def test_golden_batches_give_identical_store_contents(monkeypatch):
    out = _compare(_golden_batches(), monkeypatch)
    assert len(out["state"]["traces"]) > 50 and sum(len(b["routes"]) for b in out["state"]["buckets"].values()) > 10
    # every request, children before their roots and their joins included, took the core
    assert out["native"] == 12 and not out["fallbacks"], out


def test_varied_shapes_give_identical_store_contents(monkeypatch):
    out = _compare(varied_batches(), monkeypatch)
    state = out["state"]
    deps = {k[1] for b in state["buckets"].values() for k, _ in b["deps"]}
    assert deps == {"db", "http", "kafka", "rabbitmq"}, deps
    routes = {k for b in state["buckets"].values() for k, _ in b["routes"]}
    assert ("7", "/orders/{id}") in routes and ("shop", "/users/{id}/orders") in routes and ("shop", "/api/x/") in routes
    assert {r for svc, r in routes if svc == "metric-svc"} == {"/m"}  # its spans do not count: its histogram does
    assert any(b["breakdown"] for b in state["buckets"].values())
    assert state["pending"] and any(t["keep_reason"] == "slow" for t in state["traces"])
    assert out["native"] >= 8, out
    assert "an array or key-value list attribute the ingest reads" in out["fallbacks"], out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_more_seeds_give_identical_store_contents(monkeypatch, seed):
    out = _compare(varied_batches(seed, n=8), monkeypatch)
    assert out["native"] >= 4, out


def test_ids_in_raw_paths_fold_into_one_route(monkeypatch):
    # raw paths with ids: Python's _classify runs once per distinct value, the rows fold ids
    g = Shapes(11)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _put(rs.resource.attributes, {"service.name": "shop"})
    spans = rs.scope_spans.add().spans
    for i in range(300):
        spans.append(g.span(g.ident(16), b"", "GET", SERVER, T0, 1.0 + i % 7, {"url.path": f"/users/{i % 40}"}))
    out = _compare([(T0, req)], monkeypatch)
    bucket = out["state"]["buckets"][T0]
    assert [k for k, _ in bucket["routes"]] == [("shop", "/users/{id}")]
    assert bucket["routes"][0][1][1] == 300


def test_without_the_core_the_python_path_ingests_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(native_ingest, "_core_module", None)
    monkeypatch.setattr(native_ingest, "LOAD_ERROR", "ImportError: no module")
    monkeypatch.setattr(native_ingest, "_logged", set())
    store = Store(StoreConfig(bucket_seconds=10.0))
    ingestor = Ingestor(store)
    [(_t, req)] = varied_batches(3, n=1)
    with caplog.at_level(logging.WARNING, logger=native_ingest.__name__):
        assert native_ingest.consume_traces(ingestor.spans, req, None) is None
        assert native_ingest.consume_traces(ingestor.spans, req, None) is None
    assert len([r for r in caplog.records if "not built" in r.getMessage()]) == 1
    assert native_ingest.status()["native_ingest"].startswith("off (not built: ImportError")
    assert store.health()["native_ingest"].startswith("off (not built: ImportError")  # /api/v1/health says so
    monkeypatch.setattr(native_ingest, "enabled", False)
    assert native_ingest.status()["native_ingest"] == f"off ({native_ingest.ENV_SWITCH}=0)"


def test_switch_off_by_environment():
    import subprocess
    import sys

    code = "from chokepoint.collector import native_ingest as n; print(n.available(), n.status()['native_ingest'])"
    env = {**os.environ, native_ingest.ENV_SWITCH: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True).stdout.split(None, 1)
    assert out == ["False", f"off ({native_ingest.ENV_SWITCH}=0)\n"]


def test_values_the_core_reads_match_any_value():
    # the scalar types and bytes (hex) reach _classify as the Python walk gives them
    seen = []
    spans_mod = native_ingest.spans_mod
    real = spans_mod._classify

    def spy(span, attrs):
        seen.append(dict(attrs))
        return real(span, attrs)

    g = Shapes(5)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _put(rs.resource.attributes, {"service.name": "s"})
    attrs = {"http.route": b"\xab\xcd", "http.response.status_code": 503, "http.request.method": True, "server.port": 1.5, "url.path": None}
    rs.scope_spans.add().spans.append(g.span(g.ident(16), b"", "n", SERVER, T0, 2.0, attrs))
    store = Store(StoreConfig(bucket_seconds=10.0))
    ingestor = Ingestor(store)
    import unittest.mock

    with unittest.mock.patch.object(spans_mod, "_classify", spy):
        assert native_ingest.consume_traces(ingestor.spans, req, None).accepted == 1
    assert seen == [{"http.route": "abcd", "http.response.status_code": 503, "http.request.method": True, "server.port": 1.5, "url.path": None}]
    assert seen[0]["http.request.method"] is True
    assert common_pb2.AnyValue  # the value types above are AnyValue's scalars


def test_the_core_reads_the_bytes_the_receiver_decoded(monkeypatch):
    from chokepoint.collector.otlp_json import parse_protobuf, take_body

    [(_t, req)] = varied_batches(4, n=1)
    body = req.SerializeToString()
    decoded = parse_protobuf(body, ExportTraceServiceRequest)
    other = parse_protobuf(body, ExportTraceServiceRequest)
    assert take_body(decoded) is None  # not this thread's last decode
    assert take_body(other) is body and take_body(other) is None  # once
    seen = []
    monkeypatch.setattr(ExportTraceServiceRequest, "SerializeToString", lambda self: seen.append(1) or body, raising=False)
    store = Store(StoreConfig(bucket_seconds=10.0))
    assert Ingestor(store).consume_traces(parse_protobuf(body, ExportTraceServiceRequest)).accepted == sum(
        len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans
    )
    assert seen == []  # no re-encoding
    Ingestor(store).consume_traces(ExportTraceServiceRequest.FromString(body))
    assert seen == [1]  # a request decoded elsewhere (the Kafka receiver) is re-encoded


def test_hostile_bytes_never_crash_the_core():
    # truncated and bit-flipped payloads: a reason string (the Python path decides) or a result
    [(_t, req)] = varied_batches(6, n=1)
    body = req.SerializeToString()
    rng = random.Random(3)
    outcomes = set()
    for i in range(300):
        data = bytearray(body[: rng.randrange(len(body))] if i % 2 else body)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        store = Store(StoreConfig(bucket_seconds=10.0))
        spans = Ingestor(store).spans
        core = native_ingest._core(spans)
        try:
            out = core.consume(
                bytes(data), native_ingest._classify, store.metric_authoritative, store.is_trace_kept, store.route_quantile_s, {}, spans._take_pending, 0, True
            )
        except (ValueError, TypeError, UnicodeDecodeError):
            out = "raised"  # a value Python's _classify cannot take: the wrapper's fallback
        outcomes.add("fallback" if isinstance(out, str) else "walked")
    assert outcomes == {"fallback", "walked"}


def test_a_failing_core_leaves_the_request_to_python(monkeypatch):
    def boom(*_a):
        raise ValueError("classification failed")

    monkeypatch.setattr(native_ingest, "_classify", boom)
    monkeypatch.setattr(native_ingest, "_logged", set())
    store = Store(StoreConfig(bucket_seconds=10.0))
    [(_t, req)] = varied_batches(8, n=1)
    before = native_ingest.status()["native_ingest_fallbacks"].get("core raised ValueError", 0)
    result = Ingestor(store).consume_traces(req)  # through the hook: the Python walk takes it
    assert result.accepted > 0 and store.endpoints(None, window_s=3600)
    assert native_ingest.status()["native_ingest_fallbacks"]["core raised ValueError"] == before + 1
