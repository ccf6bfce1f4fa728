"""OTLP/HTTP receiver (default 127.0.0.1:4318): ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

Accepts ``application/x-protobuf`` (also ``application/protobuf``) and ``application/json``
(OTLP/JSON), optionally ``Content-Encoding: gzip``, and answers in the request's
encoding, with ``partial_success`` when the ingestor rejected items.  Logs are
accepted and counted, not stored.

==========================================  ======  =============================================
condition                                   status  notes
==========================================  ======  =============================================
accepted (maybe partially)                  200     Export*ServiceResponse
malformed protobuf/JSON, bad gzip           400     google.rpc.Status (code 3) with the reason
missing/wrong bearer token                  401     only when ``CHOKEPOINT_TOKEN`` is set
body (or gunzipped body) over the limit     413     default 16 MiB, ``CHOKEPOINT_MAX_BODY_BYTES``;
                                                    the rest of the body is read and discarded
                                                    (up to ``max_drain_bytes``, 256 MiB) first
content type / encoding not supported       415
too much work in flight                     429     ``Retry-After: <retry_after_s>``
the ingestor raised                         500     logged with its traceback
==========================================  ======  =============================================

Error bodies are a ``google.rpc.Status`` in the request's encoding (OTLP spec); for
JSON: ``{"code": 3, "message": "..."}``.  Every refusal is counted with
``store.count_rejected("http", reason)``.  Decoding and ingesting run on a small
thread pool (``ingest_threads``) so the event loop stays free to answer 429 quickly.

An oversized body is refused from its ``Content-Length`` before any of it is decoded, but
the answer waits until the client has sent the rest (read and thrown away): a client that
sends the whole body before reading (Python's ``urllib``, ``requests`` and so the
OpenTelemetry Python exporter) would otherwise see the connection reset under its upload,
not the 413.  Beyond ``max_drain_bytes`` the 413 is sent with ``Connection: close`` and
the connection closed.

Usage::

    app = create_otlp_http_app(OtlpConsumer(ingestor, store), admission=Admission(), auth=BearerAuth(None))
    # serve `app` with uvicorn (see chokepoint.collector.asgi_server)
"""

from __future__ import annotations

import asyncio
import json
import zlib
from concurrent.futures import ThreadPoolExecutor

from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from chokepoint.collector.admission import Admission
from chokepoint.collector.auth import UNAUTHORIZED_MESSAGE, BearerAuth
from chokepoint.collector.otlp_consumer import (
    PROTOCOL_HTTP,
    REASON_MALFORMED,
    REASON_OVERLOAD,
    REASON_TOO_LARGE,
    REASON_UNAUTHENTICATED,
    REASON_UNSUPPORTED,
    REQUEST_TYPES,
    SIGNALS,
    IngestFailure,
    OtlpConsumer,
)
from chokepoint.collector.otlp_json import PayloadError, parse_json, parse_protobuf, to_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DRAIN_BYTES = 256 * 1024 * 1024


# the google.rpc code in the error body follows from the HTTP status (OTLP/HTTP spec)
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    500: code_pb2.INTERNAL,
}


class _Refused(Exception):
    """An answer other than 200: ``reason`` is what the refusal is counted as ("" = counted already)."""

    def __init__(self, status: int, reason: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers or {}
        self.grpc_code = _GRPC_CODES[status]


def _malformed(message: str) -> _Refused:
    return _Refused(400, REASON_MALFORMED, message)


def _too_large(message: str) -> _Refused:
    return _Refused(413, REASON_TOO_LARGE, message)


def gunzip_limited(body: bytes, max_bytes: int) -> bytes:
    """Decompress a gzip body, refusing output over ``max_bytes`` (decompression bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise _too_large(f"gunzipped body exceeds the {max_bytes} byte limit")
        out += inflater.flush()
    except zlib.error as exc:
        raise _malformed(f"malformed gzip body: {exc}") from None
    if not inflater.eof:
        raise _malformed("malformed gzip body: truncated")
    if len(out) > max_bytes:
        raise _too_large(f"gunzipped body exceeds the {max_bytes} byte limit")
    return out


def decode_body(signal: str, media_type: str, body: bytes):
    """Decode an (already gunzipped) body into the signal's Export*ServiceRequest."""
    message_type = REQUEST_TYPES[signal]
    return parse_json(body, message_type) if media_type == JSON else parse_protobuf(body, message_type)


class OtlpHttpReceiver:
    """The ASGI endpoint logic; :func:`create_otlp_http_app` wraps it in a Starlette app."""

    def __init__(
        self,
        consumer: OtlpConsumer,
        admission: Admission | None = None,
        auth: BearerAuth | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        retry_after_s: int = 1,
        ingest_threads: int = 2,
        max_drain_bytes: int = DEFAULT_MAX_DRAIN_BYTES,
    ) -> None:
        self.consumer = consumer
        self.admission = admission or Admission()
        self.auth = auth or BearerAuth(None)
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s
        self.max_drain_bytes = max_drain_bytes
        self.executor = ThreadPoolExecutor(max_workers=ingest_threads, thread_name_prefix="chokepoint-otlp-http")

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)

    async def handle(self, request: Request, signal: str) -> Response:
        media_type = _MEDIA_TYPES.get(request.headers.get("content-type", "").split(";", 1)[0].strip().lower())
        try:
            return await self._handle(request, signal, media_type)
        except _Refused as refused:
            if refused.reason:  # "" when the consumer already counted it
                self.consumer.reject(PROTOCOL_HTTP, refused.reason)
            return _status_response(refused.status, refused.grpc_code, refused.message, media_type or JSON, refused.headers)

    async def _handle(self, request: Request, signal: str, media_type: str | None) -> Response:
        if not self.auth.allows(request.headers.get("authorization")):
            raise _Refused(401, REASON_UNAUTHENTICATED, UNAUTHORIZED_MESSAGE, {"WWW-Authenticate": "Bearer"})
        if media_type is None:
            raise _Refused(
                415,
                REASON_UNSUPPORTED,
                f"unsupported content type {request.headers.get('content-type', '')!r}: use application/x-protobuf or application/json",
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            raise _Refused(415, REASON_UNSUPPORTED, f"unsupported content encoding {encoding!r}: use gzip or none")
        declared = request.headers.get("content-length")
        declared_bytes = 0
        if declared is not None:
            try:
                declared_bytes = int(declared)
            except ValueError:
                raise _malformed(f"bad Content-Length {declared!r}") from None
            if declared_bytes > self.max_body_bytes:
                refused = _too_large(f"body of {declared_bytes} bytes exceeds the {self.max_body_bytes} byte limit")
                await self._drain(request.stream(), 0, refused)
                raise refused
        if not self.admission.try_acquire(declared_bytes):
            raise _Refused(
                429,
                REASON_OVERLOAD,
                "collector overloaded: too many OTLP requests in flight, retry later",
                {"Retry-After": str(self.retry_after_s)},
            )
        try:
            body = await self._read_body(request)
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self.executor, self._decode_and_consume, signal, media_type, encoding, body)
        finally:
            self.admission.release(declared_bytes)
        if media_type == JSON:
            return Response(to_json(response), 200, media_type=JSON)
        return Response(response.SerializeToString(), 200, media_type=PROTOBUF)

    async def _read_body(self, request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        stream = request.stream()
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > self.max_body_bytes:
                    refused = _too_large(f"body exceeds the {self.max_body_bytes} byte limit")
                    await self._drain(stream, size, refused)
                    raise refused
                chunks.append(chunk)
        except ClientDisconnect:
            raise _malformed("client disconnected before sending the whole body") from None
        return b"".join(chunks)

    async def _drain(self, stream, read: int, refused: _Refused) -> None:
        """Read and discard the rest of a refused body, so the client reads the answer, not a reset.

        Past ``max_drain_bytes`` (or when the client goes away) the answer carries
        ``Connection: close`` instead.
        """
        try:
            async for chunk in stream:
                read += len(chunk)
                if read > self.max_drain_bytes:
                    refused.headers["Connection"] = "close"
                    return
        except ClientDisconnect:
            refused.headers["Connection"] = "close"

    def _decode_and_consume(self, signal: str, media_type: str, encoding: str, body: bytes):
        if encoding == "gzip":
            body = gunzip_limited(body, self.max_body_bytes)
        try:
            request = decode_body(signal, media_type, body)
        except PayloadError as exc:
            raise _malformed(str(exc)) from None
        try:
            return self.consumer.consume(signal, request, PROTOCOL_HTTP)
        except IngestFailure as exc:
            # already counted by the consumer; 500 tells the sender not to retry a poison batch
            raise _Refused(500, "", str(exc)) from None


def _status_response(status: int, grpc_code: int, message: str, media_type: str, headers: dict) -> Response:
    if media_type == PROTOBUF:
        body = status_pb2.Status(code=grpc_code, message=message).SerializeToString()
    else:
        body = json.dumps({"code": grpc_code, "message": message}).encode()
    return Response(body, status, headers=headers, media_type=media_type)


def _endpoint(receiver: OtlpHttpReceiver, signal: str):
    async def endpoint(request: Request) -> Response:
        return await receiver.handle(request, signal)

    endpoint.__name__ = f"otlp_{signal}"
    return endpoint


def create_otlp_http_app(consumer: OtlpConsumer, *args, **options) -> Starlette:
    """A Starlette app serving ``POST /v1/{traces,metrics,logs}``; ``app.state.receiver`` is the logic.

    Arguments are :class:`OtlpHttpReceiver`'s (admission, auth, max_body_bytes, retry_after_s, ingest_threads).
    """
    receiver = OtlpHttpReceiver(consumer, *args, **options)
    app = Starlette(routes=[Route(f"/v1/{signal}", _endpoint(receiver, signal), methods=["POST"]) for signal in SIGNALS])
    app.state.receiver = receiver

    async def not_found(request: Request, exc) -> Response:
        return _status_response(404, code_pb2.NOT_FOUND, f"no OTLP endpoint at {request.url.path}: use /v1/traces, /v1/metrics or /v1/logs", JSON, {})

    app.add_exception_handler(404, not_found)
    return app
