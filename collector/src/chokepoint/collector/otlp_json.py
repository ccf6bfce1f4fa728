"""OTLP payload codec: protobuf and OTLP/JSON bodies to and from the OTLP protobuf messages.

OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) is the
proto3 JSON mapping with three differences, handled here:

* ``traceId``, ``spanId`` and ``parentSpanId`` (in spans, links, log records and
  exemplars) are hex strings, not base64;
* enum values are integers (``"kind": 2``) — proto3 JSON accepts those as is;
* keys are lowerCamelCase; receivers also accept the original snake_case names and
  must ignore unknown fields.

Usage::

    request = parse_json(body, ExportTraceServiceRequest)     # raises PayloadError
    request = parse_protobuf(body, ExportTraceServiceRequest)  # raises PayloadError
    body = to_json(response)                                    # bytes, lowerCamelCase
    take_body(request)   # the bytes parse_protobuf decoded it from (this thread's last, once), or None

``take_body`` spares the native span ingest a re-encoding of a request it decodes itself.

Every malformed input raises :class:`PayloadError` whose message says what was wrong;
no other exception escapes (the fuzz test in tests/collector/test_fuzz_decoders.py
checks that).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_ID_BYTES = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


class PayloadError(ValueError):
    """The body is not a valid OTLP message of the expected type; ``str()`` says why."""


_last = threading.local()  # (message, body) of this thread's last parse_protobuf


def take_body(message: Message) -> bytes | None:
    """The bytes ``parse_protobuf`` decoded ``message`` from, if it was this thread's last decode; once."""
    pair = getattr(_last, "pair", None)
    if pair is None or pair[0] is not message:
        return None
    _last.pair = None
    return pair[1]


def parse_protobuf(body: bytes, message_type: type[M]) -> M:
    """Decode an ``application/x-protobuf`` body."""
    _last.pair = None
    try:
        message = message_type.FromString(body)
        if isinstance(body, bytes):
            _last.pair = (message, body)
        return message
    except DecodeError as exc:
        raise PayloadError(f"malformed protobuf {message_type.DESCRIPTOR.name}: {exc}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:  # defensive: upb raises DecodeError
        raise PayloadError(f"malformed protobuf {message_type.DESCRIPTOR.name}: {type(exc).__name__}") from None


def parse_json(body: bytes, message_type: type[M]) -> M:
    """Decode an ``application/json`` OTLP/JSON body (hex ids, integer enums); an empty body is an empty request."""
    if not body.strip():
        return message_type()
    try:
        document = json.loads(body)
    except RecursionError:
        raise PayloadError("malformed JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError(f"malformed OTLP/JSON: top level must be an object, got {type(document).__name__}")
    try:
        _hex_ids_to_base64(document, depth=0)
        message = message_type()
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
        return message
    except PayloadError:
        raise
    except json_format.ParseError as exc:
        raise PayloadError(f"malformed OTLP/JSON {message_type.DESCRIPTOR.name}: {exc}") from None
    except RecursionError:
        raise PayloadError("malformed OTLP/JSON: nested too deeply") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise PayloadError(f"malformed OTLP/JSON {message_type.DESCRIPTOR.name}: {type(exc).__name__}: {exc}") from None


def to_json(message: Message) -> bytes:
    """Encode a response message as OTLP/JSON (lowerCamelCase, ids as hex)."""
    document = json_format.MessageToDict(message, preserving_proto_field_name=False)
    _base64_ids_to_hex(document)
    return json.dumps(document, separators=(",", ":")).encode()


_MAX_DEPTH = 200


def _hex_ids_to_base64(node, depth: int) -> None:
    """Rewrite hex id strings in place to the base64 that proto3 JSON expects for bytes."""
    if depth > _MAX_DEPTH:
        raise PayloadError("malformed OTLP/JSON: nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = _hex_to_base64(key, value)
            elif isinstance(value, dict | list):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _hex_ids_to_base64(item, depth + 1)


def _hex_to_base64(key: str, value: str) -> str:
    if value == "":
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise PayloadError(f"malformed OTLP/JSON: {key} must be hex, got {value[:40]!r}") from None
    expected = _ID_BYTES[key]
    if len(raw) != expected:
        raise PayloadError(f"malformed OTLP/JSON: {key} must be {expected * 2} hex digits, got {len(value)}")
    return base64.b64encode(raw).decode("ascii")


def _base64_ids_to_hex(node) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                with contextlib.suppress(binascii.Error, ValueError):
                    node[key] = base64.b64decode(value).hex()
            elif isinstance(value, dict | list):
                _base64_ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _base64_ids_to_hex(item)
