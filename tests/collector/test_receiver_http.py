"""OTLP/HTTP receiver on a real uvicorn socket, with a fake ingestor/store recording what arrives."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from dataclasses import dataclass

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from chokepoint.collector.admission import Admission
from chokepoint.collector.asgi_server import AsgiServers
from chokepoint.collector.auth import BearerAuth
from chokepoint.collector.otlp_consumer import OtlpConsumer
from chokepoint.collector.receiver_http import create_otlp_http_app


@dataclass
class Result:
    accepted: int
    rejected: int = 0
    error_message: str = ""


class FakeStore:
    def __init__(self) -> None:
        self.rejected: dict[tuple[str, str], int] = {}

    def count_rejected(self, protocol: str, reason: str, n: int = 1) -> None:
        self.rejected[(protocol, reason)] = self.rejected.get((protocol, reason), 0) + n


class FakeIngestor:
    """Accepts every span except those named 'reject-me'; can be told to block or raise."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Semaphore(0)
        self.fail = False

    def consume_traces(self, request, protocol=None):
        self.entered.release()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("store exploded")
        self.traces.append(request)
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        bad = sum(1 for s in spans if s.name == "reject-me")
        return Result(len(spans) - bad, bad, f"{bad} spans rejected" if bad else "")

    def consume_metrics(self, request, protocol=None):
        self.metrics.append(request)
        return Result(1)


def trace_request(*names: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i, name in enumerate(names):
        span = scope.spans.add(name=name, trace_id=bytes(range(16)), span_id=(i + 1).to_bytes(8, "big"), kind=2)
        span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000
    return request


class FakeBackend:
    """An OtlpConsumer over the fake ingestor and store; as a context manager, closes the receiver built on it."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.ingestor = FakeIngestor()
        self.consumer = OtlpConsumer(self.ingestor, self.store)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def first_request_held(backend: FakeBackend, send):
    """Run ``send()`` in a thread and hold it inside the ingestor until the block ends; yields the list its answer lands in."""
    backend.ingestor.gate = threading.Event()
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(send()))
    thread.start()
    assert backend.ingestor.entered.acquire(timeout=10)
    try:
        yield answers
    finally:
        backend.ingestor.gate.set()
        thread.join(10)


class Receiver(FakeBackend):
    def __init__(self, token=None, max_body_bytes=1 << 20, max_inflight=64):
        super().__init__()
        self.admission = Admission(max_inflight_requests=max_inflight)
        app = create_otlp_http_app(self.consumer, self.admission, BearerAuth(token), max_body_bytes=max_body_bytes, retry_after_s=7)
        self.servers = AsgiServers()
        self.servers.add("otlp-http", app, "127.0.0.1", 0)
        self.servers.start()
        self.url = f"http://127.0.0.1:{self.servers.port('otlp-http')}"
        self.app = app

    def post(self, path, body, content_type="application/x-protobuf", **headers):
        return requests.post(self.url + path, data=body, headers={"Content-Type": content_type, **headers}, timeout=10)

    def close(self):
        self.servers.shutdown()
        self.app.state.receiver.close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def test_protobuf_traces_are_ingested_and_answered_in_protobuf(receiver):
    resp = receiver.post("/v1/traces", trace_request("a", "b", "c").SerializeToString())
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(resp.content) == ExportTraceServiceResponse()
    assert [s.name for s in receiver.ingestor.traces[0].resource_spans[0].scope_spans[0].spans] == ["a", "b", "c"]


def test_partial_success_reports_rejected_spans(receiver):
    resp = receiver.post("/v1/traces", trace_request("ok", "reject-me", "reject-me").SerializeToString())
    body = ExportTraceServiceResponse.FromString(resp.content)
    assert resp.status_code == 200
    assert body.partial_success.rejected_spans == 2
    assert body.partial_success.error_message == "2 spans rejected"


def test_json_traces_with_hex_ids_and_json_response(receiver):
    doc = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "j", "kind": 3}]}]}]
    }
    resp = receiver.post("/v1/traces", json.dumps(doc), "application/json; charset=utf-8")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {}
    span = receiver.ingestor.traces[0].resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0102030405060708090a0b0c0d0e0f10" and span.kind == 3


def test_json_partial_success_is_camel_case(receiver):
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "reject-me"}]}]}]}
    resp = receiver.post("/v1/traces", json.dumps(doc), "application/json")
    assert resp.json() == {"partialSuccess": {"rejectedSpans": "1", "errorMessage": "1 spans rejected"}}


def test_gzip_body_is_decompressed(receiver):
    body = gzip.compress(trace_request("gz").SerializeToString())
    resp = receiver.post("/v1/traces", body, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 200
    assert receiver.ingestor.traces[0].resource_spans[0].scope_spans[0].spans[0].name == "gz"


def test_metrics_and_logs_endpoints(receiver):
    resp = receiver.post("/v1/metrics", ExportMetricsServiceRequest().SerializeToString())
    assert resp.status_code == 200 and ExportMetricsServiceResponse.FromString(resp.content) == ExportMetricsServiceResponse()
    logs = ExportLogsServiceRequest()
    scope = logs.resource_logs.add().scope_logs.add()
    for _ in range(5):
        scope.log_records.add().body.string_value = "x"
    resp = receiver.post("/v1/logs", logs.SerializeToString())
    assert resp.status_code == 200
    assert len(receiver.ingestor.metrics) == 1
    assert receiver.consumer.stats.snapshot()["log_records"] == {"http": 5}


def test_truncated_protobuf_is_400_with_status_message_and_counted(receiver):
    raw = trace_request("a" * 50).SerializeToString()
    resp = receiver.post("/v1/traces", raw[:-10])
    assert resp.status_code == 400
    status = status_pb2.Status.FromString(resp.content)
    assert status.code == 3 and "malformed protobuf" in status.message
    assert receiver.store.rejected == {("http", "malformed"): 1}
    assert receiver.ingestor.traces == []


def test_malformed_json_is_400_json_status(receiver):
    resp = receiver.post("/v1/traces", b'{"resourceSpans": [', "application/json")
    assert resp.status_code == 400
    assert resp.json()["code"] == 3 and "malformed JSON" in resp.json()["message"]


def test_bad_gzip_is_400(receiver):
    resp = receiver.post("/v1/traces", b"not gzip at all", **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400
    assert "malformed gzip" in status_pb2.Status.FromString(resp.content).message


def test_unsupported_content_type_and_encoding_are_415(receiver):
    resp = receiver.post("/v1/traces", b"hello", "text/plain")
    assert resp.status_code == 415 and "unsupported content type" in resp.json()["message"]
    resp = receiver.post("/v1/traces", b"hello", **{"Content-Encoding": "br"})
    assert resp.status_code == 415
    assert receiver.store.rejected == {("http", "unsupported_media_type"): 2}


def test_body_over_limit_is_413_by_content_length_and_after_gunzip():
    with Receiver(max_body_bytes=1000) as r:
        assert r.post("/v1/traces", b"\x00" * 2000).status_code == 413
        bomb = gzip.compress(b"\x00" * 100_000)
        assert len(bomb) < 1000
        resp = r.post("/v1/traces", bomb, **{"Content-Encoding": "gzip"})
        assert resp.status_code == 413 and "gunzipped body exceeds" in status_pb2.Status.FromString(resp.content).message
        # chunked upload without Content-Length
        resp = requests.post(r.url + "/v1/traces", data=iter([b"\x00" * 600, b"\x00" * 600]), headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert resp.status_code == 413
        assert r.store.rejected == {("http", "too_large"): 3}


def test_overload_is_429_with_retry_after_and_recovers():
    with Receiver(max_inflight=1) as r:
        with first_request_held(r, lambda: r.post("/v1/traces", trace_request("slow").SerializeToString())) as first:
            resp = r.post("/v1/traces", trace_request("fast").SerializeToString())
            assert resp.status_code == 429
            assert resp.headers["Retry-After"] == "7"
            assert status_pb2.Status.FromString(resp.content).code == 8
        assert first[0].status_code == 200
        assert r.post("/v1/traces", trace_request("again").SerializeToString()).status_code == 200
        assert r.store.rejected == {("http", "overload"): 1}
        assert r.admission.inflight_requests == 0


def test_ingestor_exception_is_500_and_the_receiver_keeps_serving(receiver):
    receiver.ingestor.fail = True
    resp = receiver.post("/v1/traces", trace_request("x").SerializeToString())
    assert resp.status_code == 500 and "RuntimeError" in status_pb2.Status.FromString(resp.content).message
    receiver.ingestor.fail = False
    assert receiver.post("/v1/traces", trace_request("y").SerializeToString()).status_code == 200
    assert receiver.store.rejected == {("http", "internal"): 1}


def test_unknown_path_is_404_and_get_is_405(receiver):
    assert receiver.post("/v1/profiles", b"").status_code == 404
    assert requests.get(receiver.url + "/v1/traces", timeout=10).status_code == 405


def test_bearer_token_required_when_configured():
    with Receiver(token="s3cret") as r:
        body = trace_request("a").SerializeToString()
        resp = r.post("/v1/traces", body)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        assert r.post("/v1/traces", body, Authorization="Bearer wrong").status_code == 401
        assert r.post("/v1/traces", body, Authorization="Bearer s3cret").status_code == 200
        assert r.store.rejected == {("http", "unauthenticated"): 2}
        assert len(r.ingestor.traces) == 1
