"""OTLP/gRPC receiver on a real grpcio server, with the fake ingestor/store of the HTTP tests."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from chokepoint.collector.admission import Admission
from chokepoint.collector.auth import BearerAuth
from chokepoint.collector.otlp_consumer import OtlpConsumer
from chokepoint.collector.receiver_grpc import OtlpGrpcReceiver
from tests.collector.test_receiver_http import FakeBackend, FakeIngestor, FakeStore, first_request_held, trace_request


class GrpcReceiver(FakeBackend):
    def __init__(self, token=None, max_inflight=64, max_message_bytes=1 << 20):
        super().__init__()
        self.receiver = OtlpGrpcReceiver(
            self.consumer, Admission(max_inflight_requests=max_inflight), BearerAuth(token), port=0, max_message_bytes=max_message_bytes, retry_after_s=2.5
        )
        self.receiver.start()
        self.channel = grpc.insecure_channel(self.receiver.endpoint)
        self.traces = trace_service_pb2_grpc.TraceServiceStub(self.channel)

    def close(self):
        self.channel.close()
        self.receiver.shutdown()


@pytest.fixture
def rx():
    with GrpcReceiver() as r:
        yield r


def test_export_traces_is_ingested(rx):
    response = rx.traces.Export(trace_request("a", "b"), timeout=10)
    assert not response.HasField("partial_success")
    assert [s.name for s in rx.ingestor.traces[0].resource_spans[0].scope_spans[0].spans] == ["a", "b"]


def test_partial_success_over_grpc(rx):
    response = rx.traces.Export(trace_request("ok", "reject-me"), timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == "1 spans rejected"


def test_gzip_compressed_call(rx):
    rx.traces.Export(trace_request("gz"), timeout=10, compression=grpc.Compression.Gzip)
    assert rx.ingestor.traces[0].resource_spans[0].scope_spans[0].spans[0].name == "gz"


def test_metrics_and_logs_services(rx):
    metrics_service_pb2_grpc.MetricsServiceStub(rx.channel).Export(metrics_service_pb2.ExportMetricsServiceRequest(), timeout=10)
    logs = logs_service_pb2.ExportLogsServiceRequest()
    scope = logs.resource_logs.add().scope_logs.add()
    scope.log_records.add()
    scope.log_records.add()
    logs_service_pb2_grpc.LogsServiceStub(rx.channel).Export(logs, timeout=10)
    assert len(rx.ingestor.metrics) == 1
    assert rx.consumer.stats.snapshot()["log_records"] == {"grpc": 2}


def test_malformed_protobuf_is_invalid_argument(rx):
    raw_call = rx.channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    good = trace_request("x" * 40).SerializeToString()
    with pytest.raises(grpc.RpcError) as exc:
        raw_call(good[:-7], timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in exc.value.details()
    assert rx.store.rejected == {("grpc", "malformed"): 1}
    # still serving
    rx.traces.Export(trace_request("after"), timeout=10)


def test_message_over_limit_is_resource_exhausted():
    with GrpcReceiver(max_message_bytes=2000) as r:
        with pytest.raises(grpc.RpcError) as exc:
            r.traces.Export(trace_request(*["n" * 100] * 50), timeout=10)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert r.ingestor.traces == []


def test_overload_is_resource_exhausted_with_retry_info():
    with GrpcReceiver(max_inflight=1) as r:
        with first_request_held(r, lambda: r.traces.Export(trace_request("slow"), timeout=10)), pytest.raises(grpc.RpcError) as exc:
            r.traces.Export(trace_request("fast"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = dict(exc.value.trailing_metadata())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        assert status.code == code_pb2.RESOURCE_EXHAUSTED
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
        assert r.store.rejected == {("grpc", "overload"): 1}
        assert len(r.ingestor.traces) == 1


def test_ingestor_exception_is_internal(rx):
    rx.ingestor.fail = True
    with pytest.raises(grpc.RpcError) as exc:
        rx.traces.Export(trace_request("x"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert rx.store.rejected == {("grpc", "internal"): 1}


def test_bearer_token_over_grpc_metadata():
    with GrpcReceiver(token="s3cret") as r:
        with pytest.raises(grpc.RpcError) as exc:
            r.traces.Export(trace_request("x"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            r.traces.Export(trace_request("x"), timeout=10, metadata=(("authorization", "Bearer nope"),))
        r.traces.Export(trace_request("x"), timeout=10, metadata=(("authorization", "Bearer s3cret"),))
        assert len(r.ingestor.traces) == 1
        assert r.store.rejected == {("grpc", "unauthenticated"): 2}


def test_shutdown_is_idempotent_and_start_on_busy_port_fails():
    r = GrpcReceiver()
    port = r.receiver.port
    other = OtlpGrpcReceiver(OtlpConsumer(FakeIngestor(), FakeStore()), port=port)
    try:
        with pytest.raises((OSError, RuntimeError)):
            other.start()
    finally:
        r.close()
        r.receiver.shutdown()
