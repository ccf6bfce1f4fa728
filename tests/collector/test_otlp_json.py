"""OTLP/JSON and protobuf decoding: hex ids, integer enums, camelCase and snake_case, errors."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from chokepoint.collector.otlp_json import PayloadError, parse_json, parse_protobuf, to_json

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
PARENT_ID = "eee19b7ec3c1b173"

TRACE_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "test"},
                    "spans": [
                        {
                            "traceId": TRACE_ID,
                            "spanId": SPAN_ID,
                            "parentSpanId": PARENT_ID,
                            "name": "GET /items/{id}",
                            "kind": 2,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": 1544712661000000000,
                            "attributes": [
                                {"key": "http.route", "value": {"stringValue": "/items/{id}"}},
                                {"key": "http.response.status_code", "value": {"intValue": "200"}},
                            ],
                            "links": [{"traceId": TRACE_ID.upper(), "spanId": PARENT_ID}],
                            "status": {"code": 2, "message": "boom"},
                            "unknownFutureField": {"x": 1},
                        }
                    ],
                }
            ],
        }
    ]
}


def test_otlp_json_trace_converts_hex_ids_and_integer_enums():
    request = parse_json(json.dumps(TRACE_JSON).encode(), ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex(TRACE_ID)
    assert span.span_id == bytes.fromhex(SPAN_ID)
    assert span.parent_span_id == bytes.fromhex(PARENT_ID)
    assert span.links[0].trace_id == bytes.fromhex(TRACE_ID)
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1544712661000000000
    assert span.attributes[1].value.int_value == 200
    assert request.resource_spans[0].resource.attributes[0].value.string_value == "shop"


def test_snake_case_keys_are_accepted_too():
    doc = {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": TRACE_ID, "span_id": SPAN_ID, "name": "x"}]}]}]}
    span = parse_json(json.dumps(doc).encode(), ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_ID and span.name == "x"


def test_metrics_json_with_exemplar_ids():
    doc = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "http.server.request.duration",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            "count": "3",
                                            "sum": 0.3,
                                            "bucketCounts": ["1", "2"],
                                            "explicitBounds": [0.1],
                                            "exemplars": [{"asDouble": 0.2, "traceId": TRACE_ID, "spanId": SPAN_ID}],
                                        }
                                    ],
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = parse_json(json.dumps(doc).encode(), ExportMetricsServiceRequest)
    metric = request.resource_metrics[0].scope_metrics[0].metrics[0]
    point = metric.histogram.data_points[0]
    assert metric.histogram.aggregation_temporality == 1
    assert point.count == 3 and list(point.bucket_counts) == [1, 2]
    assert point.exemplars[0].trace_id.hex() == TRACE_ID


def test_logs_json_parses():
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "hi"}, "traceId": TRACE_ID, "severityNumber": 9}]}]}]}
    request = parse_json(json.dumps(doc).encode(), ExportLogsServiceRequest)
    assert request.resource_logs[0].scope_logs[0].log_records[0].severity_number == 9


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "top level must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "traceId must be hex"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "abcd"}]}]}]}', "spanId must be 16 hex digits"),
        (b'{"resourceSpans": "nope"}', "malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": [1]}]}]}]}', "malformed OTLP/JSON"),
        (b"[" * 100000, "nested too deeply"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
def test_malformed_json_raises_payload_error_with_reason(body, fragment):
    with pytest.raises(PayloadError) as exc:
        parse_json(body, ExportTraceServiceRequest)
    assert fragment in str(exc.value)


def test_protobuf_round_trip_and_truncation():
    request = parse_json(json.dumps(TRACE_JSON).encode(), ExportTraceServiceRequest)
    raw = request.SerializeToString()
    assert parse_protobuf(raw, ExportTraceServiceRequest) == request
    with pytest.raises(PayloadError) as exc:
        parse_protobuf(raw[: len(raw) // 2], ExportTraceServiceRequest)
    assert "malformed protobuf ExportTraceServiceRequest" in str(exc.value)


def test_response_json_is_lower_camel_case_with_partial_success():
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 3
    response.partial_success.error_message = "3 spans over the cap"
    assert json.loads(to_json(response)) == {"partialSuccess": {"rejectedSpans": "3", "errorMessage": "3 spans over the cap"}}
    assert to_json(ExportTraceServiceResponse()) == b"{}"


def test_empty_body_is_an_empty_request_in_both_encodings():
    assert parse_json(b"", ExportTraceServiceRequest) == ExportTraceServiceRequest()
    assert parse_json(b" \n", ExportTraceServiceRequest) == ExportTraceServiceRequest()
    assert parse_protobuf(b"", ExportTraceServiceRequest) == ExportTraceServiceRequest()
