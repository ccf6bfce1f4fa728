"""Fuzzing the OTLP decoders and the HTTP receiver: random and mutated bytes never crash, always 2xx/4xx."""

from __future__ import annotations

import contextlib
import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.testclient import TestClient

from chokepoint.collector.admission import Admission
from chokepoint.collector.otlp_consumer import REQUEST_TYPES, OtlpConsumer
from chokepoint.collector.otlp_json import PayloadError, parse_json, parse_protobuf
from chokepoint.collector.receiver_http import create_otlp_http_app
from tests.collector.test_receiver_http import FakeIngestor, FakeStore, trace_request

SEED_PROTOBUF = trace_request("GET /items/{id}", "SELECT items", "reject-me").SerializeToString()
SEED_JSON = json.dumps(
    {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "x", "kind": 2}]}],
            }
        ]
    }
).encode()


@st.composite
def mutated(draw, seed: bytes):
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


ANY_BODY = st.one_of(st.binary(max_size=512), mutated(SEED_PROTOBUF), mutated(SEED_JSON))


@settings(max_examples=400, deadline=None)
@given(body=ANY_BODY, signal=st.sampled_from(sorted(REQUEST_TYPES)))
def test_decoders_raise_only_payload_error(body, signal):
    for parse in (parse_protobuf, parse_json):
        try:
            parse(body, REQUEST_TYPES[signal])
        except PayloadError as exc:
            assert str(exc)


@settings(max_examples=200, deadline=None)
@given(
    text=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "kind", "attributes", "value", "key", "x"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_json_decoder_on_structured_junk(text):
    with contextlib.suppress(PayloadError):
        parse_json(json.dumps(text).encode(), ExportTraceServiceRequest)


@pytest.fixture(scope="module")
def client():
    store = FakeStore()
    consumer = OtlpConsumer(FakeIngestor(), store)
    return TestClient(create_otlp_http_app(consumer, Admission(), max_body_bytes=64 * 1024), raise_server_exceptions=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=ANY_BODY,
    signal=st.sampled_from(["traces", "metrics", "logs"]),
    content_type=st.sampled_from(["application/x-protobuf", "application/json", "application/protobuf", "text/plain", ""]),
    gzipped=st.booleans(),
    bad_gzip=st.booleans(),
)
def test_http_receiver_answers_2xx_or_4xx(client, body, signal, content_type, gzipped, bad_gzip):
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        body = body if bad_gzip else gzip.compress(body)
    resp = client.post(f"/v1/{signal}", content=body, headers=headers)
    assert 200 <= resp.status_code < 500, resp.text


@pytest.fixture(scope="module")
def real_client():
    from chokepoint.collector.ingest import Ingestor
    from chokepoint.collector.store import Store

    store = Store()
    consumer = OtlpConsumer(Ingestor(store), store)
    return TestClient(create_otlp_http_app(consumer, Admission(), max_body_bytes=64 * 1024), raise_server_exceptions=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(mutated(SEED_PROTOBUF), mutated(SEED_JSON)), signal=st.sampled_from(["traces", "metrics"]))
def test_real_ingestor_behind_the_receiver_never_fails_on_mutated_input(real_client, body, signal):
    content_type = "application/json" if body[:1] == b"{" else "application/x-protobuf"
    resp = real_client.post(f"/v1/{signal}", content=body, headers={"Content-Type": content_type})
    assert 200 <= resp.status_code < 500, resp.text


@pytest.fixture(scope="module")
def grpc_export():
    import grpc

    from chokepoint.collector.receiver_grpc import OtlpGrpcReceiver

    receiver = OtlpGrpcReceiver(OtlpConsumer(FakeIngestor(), FakeStore()), port=0, max_message_bytes=64 * 1024)
    receiver.start()
    channel = grpc.insecure_channel(receiver.endpoint)
    calls = {
        "traces": channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        "metrics": channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
        "logs": channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
    }
    yield calls
    channel.close()
    receiver.shutdown()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=ANY_BODY, signal=st.sampled_from(["traces", "metrics", "logs"]))
def test_grpc_receiver_answers_ok_or_invalid_argument(grpc_export, body, signal):
    import grpc

    try:
        grpc_export[signal](body, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
