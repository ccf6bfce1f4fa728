"""compat: every private OpenTelemetry name the agent uses exists at the installed release,
and each fallback behaves as the name it stands in for.

These run at both ends of the supported range (``constraints.txt`` in the repo's venv,
``constraints-oldest.txt`` in ``scripts/check_install.py``'s)."""

from __future__ import annotations

import importlib

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import Link, SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState

from chokepoint.instrument import compat


def test_no_private_name_is_missing_at_this_release():
    assert compat.MISSING == []
    absent = []
    for module, names in compat.PRIVATE_NAMES:
        if not any(hasattr(importlib.import_module(module), name) for name in names.split("|")):
            absent.append(f"{module}.{names}")
    assert absent == []


def test_suppression_keys_are_the_ones_upstream_sets():
    with suppress_instrumentation():
        assert otel_context.get_value(compat.SUPPRESS_INSTRUMENTATION_KEY) is True
    with suppress_http_instrumentation():
        assert otel_context.get_value(compat.SUPPRESS_HTTP_INSTRUMENTATION_KEY) is True


def test_span_key_is_where_the_api_keeps_the_current_span():
    span = TracerProvider().get_tracer("t").start_span("s")
    ctx = trace.set_span_in_context(span)
    assert ctx.get(compat.SPAN_KEY) is span
    assert compat._span_key_of_context() == compat.SPAN_KEY


class _Printable:
    def __str__(self):
        return "printable"


@pytest.mark.parametrize("value", ["abcdefgh", b"abcdefgh", 3, 2.5, True, ["abcdefgh", "b"], ("a", "c"), [1, 2], _Printable()])
def test_clean_attribute_value_stores_what_an_sdk_span_stores(value):
    span = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=4)).get_tracer("t").start_span("s")
    span.set_attribute("key", value)
    span.set_attributes({"mapped": value, "": "dropped"})
    stored = dict(span.attributes)
    assert stored.get("key") == compat.clean_attribute_value(value, 4)
    assert {k: v for k, v in stored.items() if k != "key"} == compat.clean_attribute_value({"mapped": value, "": "dropped"}, 4)


@pytest.mark.parametrize("value", ["abcdefgh", 3, 2.5, True, None, ["abcdefgh", "b"], [1, 2]])
def test_clean_attribute_value_fallback_agrees_on_plain_values(value):
    assert compat._clean_attribute_value_fallback(value, 4) == compat.clean_attribute_value(value, 4)


@pytest.mark.parametrize(
    ("trace_id", "attributes", "trace_state"),
    [(1, None, None), (0, None, None), (0, {"a": 1}, None), (0, None, TraceState([("k", "v")]))],
)
def test_is_valid_link_fallback_matches_the_sdk(trace_id, attributes, trace_state):
    context = SpanContext(trace_id, 1 if trace_id else 0, is_remote=True, trace_flags=TraceFlags(1), trace_state=trace_state)
    assert compat._is_valid_link_fallback(context, attributes) == compat.is_valid_link(context, attributes)
    assert compat._is_valid_link_fallback(None, None) == compat.is_valid_link(None, None)


def test_span_and_attribute_helpers_read_the_sdk_objects():
    limits = SpanLimits(max_attributes=7)
    provider = TracerProvider(span_limits=limits)
    assert compat.span_limits(provider) is limits
    assert compat.span_limits(object()).max_attributes == SpanLimits().max_attributes
    tracer = provider.get_tracer("lib", "1.2")
    assert compat.tracer_enabled(tracer) is True
    assert compat.instrumentation_scope(tracer).name == "lib"
    assert compat.instrumentation_scope(tracer).version == "1.2"
    span = tracer.start_span("s", attributes={"a": 1})
    span.end()
    assert dict(compat.sdk_span_attributes(span)) == {"a": 1}
    assert type(compat.attributes_dict(compat.sdk_span_attributes(span))) is dict
    link = Link(span.get_span_context(), {"x": 1})
    compat.set_link_attributes(link, BoundedAttributes(2, {"y": 2}))
    assert dict(link.attributes) == {"y": 2}


def test_reader_collect_can_be_wrapped():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "compat"}))
    provider.get_meter("m").create_counter("c").add(1)
    original = compat.reader_collect(reader)
    assert original is not None
    seen = []

    def collect(reader_, timeout_millis=10_000):
        seen.append(True)
        return original(reader_, timeout_millis=timeout_millis)

    assert compat.set_reader_collect(reader, collect) is True
    data = reader.get_metrics_data()
    assert seen and data.resource_metrics[0].scope_metrics[0].metrics[0].name == "c"
    assert compat.meter_provider_resource(provider).attributes["service.name"] == "compat"
    assert compat.set_reader_collect(object(), collect) is False


def test_random_trace_id_flag_is_the_api_s():
    assert getattr(TraceFlags, "RANDOM_TRACE_ID", 0) == compat.RANDOM_TRACE_ID_FLAG


def test_agnosticcontextmanager_works_in_both_forms():
    @compat.agnosticcontextmanager
    def managed():
        yield 5

    with managed() as value:
        assert value == 5


def test_kafka_headers_getter_fallback_reads_record_headers():
    headers = [("traceparent", b"00-abc-01"), ("other", b"x")]
    getter = compat._KafkaHeadersGetter()
    assert getter.get(headers, "traceparent") == ["00-abc-01"]
    assert getter.get(headers, "missing") is None
    assert getter.keys(headers) == ["traceparent", "other"]
    for library in ("kafka", "aiokafka"):
        upstream = compat.kafka_headers_getter(library)
        assert upstream.get(headers, "traceparent") == getter.get(headers, "traceparent")
        assert list(upstream.keys(headers)) == getter.keys(headers)


def test_confluent_kafka_consume_span_factory_is_found():
    found = compat.confluent_kafka_consume_span()
    assert found is not None
    _module, factory, getter, links_of = found
    assert callable(factory) and callable(links_of) and getter is not None


def test_urllib3_timeout_helpers():
    from urllib3.util.timeout import Timeout

    default = compat.urllib3_default_timeout()
    assert Timeout().connect_timeout is default or Timeout()._read is default
    assert compat.urllib3_read_timeout(Timeout(read=3)) == 3
    assert compat.urllib3_read_timeout(Timeout()) is default


def test_load_instrumentors_runs_each_entry_point_through_the_distro(monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests")
    seen = []

    class Distro:
        def load_instrumentor(self, entry_point, **kwargs):
            seen.append(entry_point.name)

    compat.load_instrumentors(Distro())
    assert "requests" not in seen and "urllib3" in seen
