"""What both ingest paths share (``otlp_values``): OTLP values as Python values, the resource's
service and identity, HTTP error statuses."""

from __future__ import annotations

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from chokepoint.collector.otlp_values import any_value, attributes, is_http_error, resource_service
from tests.collector.otlp_builders import kvs


def test_any_value_of_every_kind():
    nested = common_pb2.AnyValue()
    nested.array_value.values.add().string_value = "GET"
    nested.array_value.values.add().int_value = 2
    kv = nested.array_value.values.add().kvlist_value.values.add(key="k")
    kv.value.bool_value = True
    assert any_value(nested) == ["GET", 2, {"k": True}]
    assert any_value(common_pb2.AnyValue(bytes_value=b"\x01\xff")) == "01ff"
    assert any_value(common_pb2.AnyValue(double_value=1.5)) == 1.5
    assert any_value(common_pb2.AnyValue()) is None
    assert attributes(kvs({"http.route": "/a", "http.response.status_code": 200, "error": False})) == {
        "http.route": "/a",
        "http.response.status_code": 200,
        "error": False,
    }


def test_resource_service_and_identity():
    resource = resource_pb2.Resource(attributes=kvs({"service.name": "shop", "service.instance.id": "w1", "host.name": "h", "process.pid": 42}))
    assert resource_service(resource) == ("shop", ("shop", "w1", "h", 42))
    assert resource_service(resource_pb2.Resource()) == ("unknown_service", ("unknown_service", None, None, None))


def test_http_error_statuses():
    assert [is_http_error(s) for s in (500, "503", 499, "200", None, "not-a-number", 599.0)] == [True, True, False, False, False, False, True]
