"""OTLP/gRPC receiver (default 127.0.0.1:4317): TraceService, MetricsService and LogsService ``Export``.

The servicers subclass the generated ``opentelemetry.proto.collector.*.v1.*_pb2_grpc``
servicers, but are registered with a raw-bytes request deserializer so that a
malformed message is answered with ``INVALID_ARGUMENT`` and a reason (the generated
registration would fail inside grpcio with an opaque ``INTERNAL``).  gzip request
compression is handled by grpcio.

============================================  ======================================
condition                                     status
============================================  ======================================
accepted (maybe partially)                    OK, response with ``partial_success``
malformed protobuf                            INVALID_ARGUMENT with the reason
missing/wrong ``authorization`` metadata      UNAUTHENTICATED (``CHOKEPOINT_TOKEN`` set)
message over ``max_body_bytes``               RESOURCE_EXHAUSTED (by grpcio)
too much work in flight                       RESOURCE_EXHAUSTED + ``google.rpc.RetryInfo``
the ingestor raised                           INTERNAL
============================================  ======================================

Refusals are counted with ``store.count_rejected("grpc", reason)``.

Usage::

    receiver = OtlpGrpcReceiver(consumer, admission, auth, host="127.0.0.1", port=4317)
    receiver.start()          # returns once listening; receiver.port is the bound port
    receiver.shutdown()       # idempotent; waits up to `grace_s` for running calls
"""

from __future__ import annotations

import collections
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from chokepoint.collector.admission import Admission
from chokepoint.collector.auth import UNAUTHORIZED_MESSAGE, BearerAuth
from chokepoint.collector.otlp_consumer import (
    PROTOCOL_GRPC,
    REASON_MALFORMED,
    REASON_OVERLOAD,
    REASON_UNAUTHENTICATED,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    IngestFailure,
    OtlpConsumer,
)
from chokepoint.collector.otlp_json import PayloadError, parse_protobuf

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    """A ``grpc.Status`` for ``context.abort_with_status`` (as grpcio-status builds it)."""


def retry_status(message: str, retry_after_s: float) -> _Status:
    """RESOURCE_EXHAUSTED carrying ``google.rpc.RetryInfo`` in ``grpc-status-details-bin`` (OTLP throttling)."""
    delay = duration_pb2.Duration(seconds=int(retry_after_s), nanos=int((retry_after_s % 1) * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    rich = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    return _Status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, (("grpc-status-details-bin", rich.SerializeToString()),))


class _ExportHandler:
    """What every Export does: auth, admission, decode, consume, answer."""

    def __init__(self, signal: str, consumer: OtlpConsumer, admission: Admission, auth: BearerAuth, retry_after_s: float) -> None:
        self.signal = signal
        self.consumer = consumer
        self.admission = admission
        self.auth = auth
        self.retry_after_s = retry_after_s
        self.message_type = REQUEST_TYPES[signal]

    def export(self, raw: bytes, context: grpc.ServicerContext):
        if self.auth.enabled:
            authorization = next((value for key, value in context.invocation_metadata() if key == "authorization"), None)
            if not self.auth.allows(authorization):
                self.consumer.reject(PROTOCOL_GRPC, REASON_UNAUTHENTICATED)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED_MESSAGE)
        nbytes = len(raw)
        if not self.admission.try_acquire(nbytes):
            self.consumer.reject(PROTOCOL_GRPC, REASON_OVERLOAD)
            context.abort_with_status(retry_status("collector overloaded: too many OTLP requests in flight, retry later", self.retry_after_s))
        try:
            try:
                request = parse_protobuf(raw, self.message_type)
            except PayloadError as exc:
                self.consumer.reject(PROTOCOL_GRPC, REASON_MALFORMED)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            try:
                return self.consumer.consume(self.signal, request, PROTOCOL_GRPC)
            except IngestFailure as exc:  # counted by the consumer
                context.abort(grpc.StatusCode.INTERNAL, str(exc))
        finally:
            self.admission.release(nbytes)


class _Exporting:
    """The one method of every OTLP service, handed to an :class:`_ExportHandler`."""

    def __init__(self, handler: _ExportHandler) -> None:
        self._handler = handler

    def Export(self, request, context):
        return self._handler.export(request, context)


class TraceServicer(_Exporting, trace_service_pb2_grpc.TraceServiceServicer):
    pass


class MetricsServicer(_Exporting, metrics_service_pb2_grpc.MetricsServiceServicer):
    pass


class LogsServicer(_Exporting, logs_service_pb2_grpc.LogsServiceServicer):
    pass


_SERVICES = (
    ("traces", trace_service_pb2, "TraceService", TraceServicer),
    ("metrics", metrics_service_pb2, "MetricsService", MetricsServicer),
    ("logs", logs_service_pb2, "LogsService", LogsServicer),
)


def _generic_handler(servicer, module, service_name: str, response_type) -> grpc.GenericRpcHandler:
    full_name = module.DESCRIPTOR.services_by_name[service_name].full_name
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Export,
        request_deserializer=None,  # raw bytes: we decode, to answer INVALID_ARGUMENT
        response_serializer=response_type.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(full_name, {"Export": handler})


class OtlpGrpcReceiver:
    def __init__(
        self,
        consumer: OtlpConsumer,
        admission: Admission | None = None,
        auth: BearerAuth | None = None,
        host: str = "127.0.0.1",
        port: int = 4317,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retry_after_s: float = 1,
        workers: int = 8,
        max_concurrent_rpcs: int | None = None,
    ) -> None:
        self.consumer = consumer
        self.admission = admission or Admission()
        self.auth = auth or BearerAuth(None)
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.retry_after_s = retry_after_s
        self.workers = workers
        # grpcio itself answers RESOURCE_EXHAUSTED beyond this many queued+running calls
        self.max_concurrent_rpcs = max_concurrent_rpcs or max(4 * workers, self.admission.max_inflight_requests * 2)
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="chokepoint-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=self.max_concurrent_rpcs,
        )
        for signal, module, service_name, servicer_cls in _SERVICES:
            handler = _ExportHandler(signal, self.consumer, self.admission, self.auth, self.retry_after_s)
            server.add_generic_rpc_handlers((_generic_handler(servicer_cls(handler), module, service_name, RESPONSE_TYPES[signal]),))
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            raise OSError(f"OTLP/gRPC receiver could not bind {self.host}:{self.port}")
        self.port = bound
        server.start()
        self._server = server

    def shutdown(self, grace_s: float = 5.0) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(grace_s).wait(grace_s + 1)
