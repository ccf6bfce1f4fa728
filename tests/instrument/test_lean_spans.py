"""Lean spans against the SDK's: the same calls through both tracers must export the same
spans (names, kinds, ids, parents, attributes, events, links, status) and record the same
metrics."""

from __future__ import annotations

import logging
import random

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, _Span
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chokepoint.instrument import signals
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.lean_spans import LeanSpan, LeanTracerProvider
from chokepoint.instrument.sampling import sanitized_copy

MS = 1_000_000
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class CountingIds(RandomIdGenerator):
    """Sequential ids, so both tracers give the same ids to the same calls."""

    def __init__(self):
        self.next_span = 0x1000
        self.next_trace = 0x10_0000

    def generate_span_id(self) -> int:
        self.next_span += 1
        return self.next_span

    def generate_trace_id(self) -> int:
        self.next_trace += 1
        return self.next_trace


class Unprintable:
    __slots__ = ()


class Printable:
    def __str__(self):
        return "printable"


def wire(make_harness, lean: bool, sample_rate: float = 1.0, limits: SpanLimits | None = None, ids=None):
    harness = make_harness(AgentConfig(trace_sample_rate=sample_rate, export_delay_ms=0))
    provider = LeanTracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource.create({"service.name": "unit"}),
        shutdown_on_exit=False,
        id_generator=ids or CountingIds(),
        span_limits=limits,
        lean=lean,
    )
    provider.add_span_processor(harness.processor)
    harness.tracer = provider.get_tracer("unit", "1.0")
    harness.lean_provider = provider
    return harness


def scenario(tracer) -> list:
    """Every span API call an instrumentor makes; returns the spans started."""
    started = []
    remote = TraceContextTextMapPropagator().extract({"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    attributes = {
        "http.request.method": "GET",
        "http.route": "/items/{id}",
        "http.response.status_code": 200,
        "float": 0.5,
        "flag": True,
        "bytes": b"raw",
        "none": None,
        "names": ["a", "b"],
        "numbers": [1, 2, 3],
        "nested": {"k": "v", "l": [1]},
        "object": Printable(),
        "unprintable": Unprintable(),
        "": "empty key",
    }
    with tracer.start_as_current_span("GET /items", context=remote, kind=SpanKind.SERVER, attributes=attributes) as root:
        started.append(root)
        root.set_attribute("late", "x")
        root.set_attribute("names", ["c"])  # replaced: a tuple, newest
        root.set_attribute("object2", Unprintable())
        root.set_attribute(7, "not a key")
        root.set_attributes({"many.a": 1, "many.b": ("x", "y")})
        root.set_attributes({8: "eight", "many.c": [True], "": "dropped"})  # a mapping: keys str()-ed as the SDK does
        # valid keys, some values to clean: captured headers (tuples), a list, odd tuple members
        root.set_attributes({"hdr.a": ("55",), "hdr.b": (1, None, b"x", 2.5), "list": [1, 2], "odd": (Printable(), Unprintable()), "plain": 3})
        root.add_event("checkpoint", {"n": 1, "list": [1, 2]})
        root.add_link(SpanContext(0xABC, 0xDEF, is_remote=True), {"link": "yes"})
        root.add_link(trace.INVALID_SPAN_CONTEXT)  # ignored: invalid, no attributes
        root.update_name("GET /items/{id}")
        with tracer.start_as_current_span(
            "SELECT items", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql", "db.query.text": "SELECT * FROM items WHERE id = 5"}
        ) as db:
            started.append(db)
            db.set_status(StatusCode.OK)
            db.set_status(Status(StatusCode.ERROR, "ignored: OK is final"))
        failing = tracer.start_span(
            "GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "server.address": "api.example.com", "http.response.status_code": 503}
        )
        started.append(failing)
        with pytest.raises(ValueError), trace.use_span(failing, end_on_exit=True):
            raise ValueError("upstream said 503")
        with pytest.raises(KeyError), tracer.start_span("plain", links=[Link(SpanContext(0xAB, 0xCD, is_remote=False), {"why": "batch"})]) as plain:
            started.append(plain)
            plain.set_status(StatusCode.UNSET)
            plain.set_status(StatusCode.OK, "description dropped: not ERROR")
            raise KeyError("missing")
        custom = tracer.start_span("custom", start_time=5 * MS)
        started.append(custom)
        custom.set_status(StatusCode.ERROR, "explicit")
        custom.record_exception(RuntimeError("recorded"), attributes={"extra": 1}, timestamp=6 * MS)
        custom.end(end_time=7 * MS)
        custom.end()  # logged and ignored
        custom.set_attribute("after", "end")  # ignored
        custom.set_status(StatusCode.OK)  # ignored
        custom.update_name("renamed after end")  # ignored
        custom.add_event("after end")  # ignored
    with tracer.start_as_current_span("background", attributes={"job": "sweep"}) as background:
        started.append(background)
        assert trace.get_current_span() is background
    return started


def exported(harness) -> list:
    harness.flush()
    return sorted(harness.exporter.get_finished_spans(), key=lambda span: span.context.span_id)


def comparable(span: ReadableSpan) -> dict:
    def event(e):
        attributes = dict(e.attributes)
        if "exception.stacktrace" in attributes:  # frames differ (SDK vs lean module); the exception line must not
            attributes["exception.stacktrace"] = attributes["exception.stacktrace"].strip().splitlines()[-1]
        return (e.name, attributes)

    return {
        "name": span.name,
        "kind": span.kind,
        "context": span.context,
        "parent": span.parent,
        "attributes": dict(span.attributes),
        "events": [event(e) for e in span.events],
        "links": [(link.context, dict(link.attributes)) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
    }


def metric_shape(harness) -> dict:
    """Per metric: {attributes: number of points/values}, durations left out (real clocks)."""
    shape = {}
    data = harness.reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    count = getattr(point, "count", None)
                    value = count if count is not None else (point.value if isinstance(point.value, int) else "float")
                    shape.setdefault(metric.name, {})[frozenset(point.attributes.items())] = value
    return shape


def test_lean_and_sdk_spans_export_the_same(make_harness, caplog):
    sdk, lean = wire(make_harness, lean=False), wire(make_harness, lean=True)
    with caplog.at_level(logging.WARNING):
        sdk_started = scenario(sdk.tracer)
        sdk_warnings = sorted(r.getMessage() for r in caplog.records)
        caplog.clear()
        lean_started = scenario(lean.tracer)
        lean_warnings = sorted(r.getMessage() for r in caplog.records)
    assert all(type(span) is _Span for span in sdk_started)
    assert all(type(span) is LeanSpan for span in lean_started)
    assert lean_warnings == sdk_warnings  # ended-span calls, invalid keys and values: the same complaints

    sdk_spans, lean_spans = exported(sdk), exported(lean)
    assert len(sdk_spans) == len(lean_spans) == 6
    assert [comparable(s) for s in lean_spans] == [comparable(s) for s in sdk_spans]
    assert all(type(span) is ReadableSpan for span in lean_spans)

    by_name = {span.name: span for span in lean_spans}
    root = by_name["GET /items/{id}"]
    assert root.parent.is_remote and f"{root.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert root.context.trace_state.get("vendor") == "1"
    assert root.attributes["names"] == ("c",) and root.attributes["object"] == "printable" and root.attributes["unprintable"] is None
    assert "" not in root.attributes and 7 not in root.attributes and root.attributes["8"] == "eight"
    assert by_name["GET"].status.status_code is StatusCode.ERROR and by_name["GET"].events[0].attributes["exception.escaped"] == "False"
    assert by_name["plain"].events[0].attributes["exception.escaped"] == "True"
    assert by_name["custom"].end_time == 7 * MS and "after" not in by_name["custom"].attributes
    assert by_name["background"].parent is None and by_name["background"].context.trace_id != root.context.trace_id

    assert metric_shape(lean) == metric_shape(sdk)
    encode_spans(lean_spans)  # an odd attribute value can never fail the OTLP export


def test_the_default_id_generator_gives_the_sdk_ids_and_flags(make_harness):
    """With the SDK's own ``RandomIdGenerator`` lean spans draw their ids from
    ``random.getrandbits`` themselves: same draws in the same order as the SDK (trace id,
    then span id), same flags, same parents — also under an invalid or a remote parent."""
    results = []
    for lean in (False, True):
        harness = wire(make_harness, lean=lean, ids=RandomIdGenerator())
        assert harness.lean_provider.lean is lean
        random.seed(20261122)
        tracer = harness.tracer
        started = scenario(tracer)
        invalid_parent = trace.set_span_in_context(trace.INVALID_SPAN)
        with tracer.start_as_current_span("under an invalid parent", context=invalid_parent) as orphan, tracer.start_as_current_span("its child") as child:
            started += [orphan, child]
        unsampled_remote = TraceContextTextMapPropagator().extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"})
        with tracer.start_as_current_span("under an unsampled remote parent", context=unsampled_remote) as remote_child:
            started.append(remote_child)
        assert all(type(span) is (LeanSpan if lean else _Span) for span in started)
        results.append([comparable(s) for s in exported(harness)])
    sdk, lean = results
    assert len(sdk) == 9
    assert lean == sdk
    by_name = {span["name"]: span for span in lean}
    fresh = by_name["background"]["context"]
    assert fresh.trace_flags == TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID and fresh.trace_id and fresh.span_id
    assert by_name["under an invalid parent"]["parent"] is None
    assert by_name["its child"]["parent"] == by_name["under an invalid parent"]["context"]
    assert by_name["GET /items/{id}"]["context"].trace_flags == TraceFlags.SAMPLED  # the remote parent's: no random flag
    assert by_name["under an unsampled remote parent"]["context"].trace_flags == TraceFlags.SAMPLED  # always-on samples it


def timed_request(tracer, start_ns: int, status: int = 200, db_ms=(3.0, 4.0), http_ms: float = 5.0) -> None:
    root = tracer.start_span(
        "GET /orders",
        kind=SpanKind.SERVER,
        start_time=start_ns,
        attributes={"http.request.method": "GET", "http.route": "/orders", "http.response.status_code": status},
    )
    ctx = trace.set_span_in_context(root)
    cursor = start_ns
    for ms in db_ms:
        span = tracer.start_span(
            "SELECT", context=ctx, kind=SpanKind.CLIENT, start_time=cursor, attributes={"db.system.name": "postgresql", "db.query.text": "SELECT 1 WHERE a = 5"}
        )
        cursor += int(ms * MS)
        span.end(end_time=cursor)
    span = tracer.start_span(
        "GET",
        context=ctx,
        kind=SpanKind.CLIENT,
        start_time=cursor,
        attributes={"http.request.method": "GET", "server.address": "pay.example.com", "http.response.status_code": status},
    )
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    cursor += int(http_ms * MS)
    span.end(end_time=cursor)
    root.end(end_time=cursor + 2 * MS)


def test_lean_and_sdk_spans_record_the_same_metrics(make_harness):
    sdk, lean = wire(make_harness, lean=False, sample_rate=0.0), wire(make_harness, lean=True, sample_rate=0.0)
    for harness in (sdk, lean):
        for n in range(60):
            timed_request(harness.tracer, start_ns=(1000 + n * 50) * MS, status=503 if n % 20 == 0 else 200, db_ms=(3.0 + n % 3, 4.0))
    names = [
        signals.HTTP_SERVER_DURATION,
        signals.HTTP_CLIENT_DURATION,
        signals.DB_CLIENT_OPERATION_DURATION,
        signals.REQUEST_BREAKDOWN_TIME,
        signals.REQUEST_DB_QUERIES,
        signals.AGENT_EXPORTED_TRACES,
    ]
    for name in names:
        sdk_values, lean_values = sdk.metric_values(name), lean.metric_values(name)
        assert sdk_values, name
        assert lean_values == sdk_values, name
    assert [comparable(s) for s in exported(lean)] == [comparable(s) for s in exported(sdk)]  # the 3 error traces
    assert len(exported(lean)) == 3 * 4  # root, 2 statements, 1 call


def test_span_limits_apply_as_in_the_sdk(make_harness, caplog):
    limits = SpanLimits(max_span_attributes=4, max_events=2, max_links=1, max_attribute_length=5)
    results, warnings = [], []
    for lean in (False, True):
        caplog.clear()
        harness = wire(make_harness, lean=lean, limits=limits)
        span = harness.tracer.start_span(
            "limited", attributes={f"a{i}": "long value" for i in range(6)}, links=[Link(SpanContext(1, n, False), {"n": n}) for n in (1, 2)]
        )
        span.set_attribute("a3", "again")  # the newest now: a4 is the oldest left
        span.set_attribute("b", ["looooong", 1])
        span.set_attributes({"b": ("looooong", 2), "c": ("short",)})  # header tuples: truncated as the SDK does
        for n in range(3):
            span.add_event(f"e{n}", {"text": "abcdefgh"})
        span.end()
        results.append([comparable(s) for s in exported(harness)])
        warnings.append(sorted(r.getMessage() for r in caplog.records))
    assert warnings[1] == warnings[0] and any("truncating" in w for w in warnings[1])
    assert results[1] == results[0]
    (span,) = results[1]
    assert list(span["attributes"].items()) == [("a5", "long "), ("a3", "again"), ("b", ("loooo", 2)), ("c", ("short",))]
    assert [name for name, _ in span["events"]] == ["e1", "e2"] and span["events"][0][1] == {"text": "abcde"}
    assert [context.span_id for context, _ in span["links"]] == [2]


def test_a_zero_attribute_limit_keeps_nothing_and_never_raises(make_harness):
    results = []
    for lean in (False, True):
        harness = wire(make_harness, lean=lean, limits=SpanLimits(max_span_attributes=0, max_events=0, max_links=0))
        span = harness.tracer.start_span("none kept", attributes={"a": 1, 5: "b"}, links=[Link(SpanContext(1, 2, False))])
        span.set_attribute("b", 2)
        span.set_attributes({"c": 3, 4: [5]})
        span.add_event("e")
        span.add_link(SpanContext(1, 3, False))
        span.end()
        results.append([comparable(s) for s in exported(harness)])
    assert results[1] == results[0]
    assert results[1][0]["attributes"] == {} and results[1][0]["events"] == [] and results[1][0]["links"] == []


def test_another_span_processor_gets_sdk_spans(make_harness):
    harness = wire(make_harness, lean=True)
    assert harness.lean_provider.lean
    before = harness.tracer.start_span("before")
    assert type(before) is LeanSpan
    before.end()
    mine = InMemorySpanExporter()
    harness.lean_provider.add_span_processor(SimpleSpanProcessor(mine))
    assert not harness.lean_provider.lean
    with harness.tracer.start_as_current_span("after") as after:
        assert type(after) is _Span
    assert [span.name for span in mine.get_finished_spans()] == ["after"]
    assert sorted(span.name for span in exported(harness)) == ["after", "before"]


def test_sdk_spans_when_the_sampler_is_not_always_on(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=1.0))
    provider = LeanTracerProvider(sampler=TraceIdRatioBased(1.0), shutdown_on_exit=False)
    provider.add_span_processor(harness.processor)
    span = provider.get_tracer("unit").start_span("ratio")
    assert type(span) is _Span and not provider.lean
    span.end()


def test_tracers_are_cached_per_scope():
    provider = LeanTracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    assert provider.get_tracer("a", "1") is provider.get_tracer("a", "1")
    assert provider.get_tracer("a", "1") is not provider.get_tracer("b", "1")


def test_a_kept_lean_span_is_copied_for_export_not_shared(make_harness):
    harness = wire(make_harness, lean=True)
    span = harness.tracer.start_span(
        "q", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql", "db.statement": "SELECT 1 FROM t WHERE x = 'secret'"}
    )
    span.end()
    copy = sanitized_copy(span)
    assert type(copy) is ReadableSpan and copy.attributes["db.statement"] == "SELECT ? FROM t WHERE x = ?"
    assert span.attributes["db.statement"].endswith("'secret'")  # the buffered span is left as it was


def database_requests(tracer, url: str) -> None:
    """Two requests through SQLAlchemy on PostgreSQL: statements, a failing one, a refused connect."""
    engine = sa.create_engine(url, pool_size=2)
    for n in range(2):
        with tracer.start_as_current_span("GET /stock", kind=SpanKind.SERVER, attributes={"http.request.method": "GET", "http.route": "/stock"}) as root:
            with engine.connect() as conn:
                for k in range(3):
                    conn.execute(sa.text("SELECT :k + 1"), {"k": k}).scalar()
                if n == 1:
                    with pytest.raises(sa.exc.ProgrammingError):
                        conn.execute(sa.text("SELECT * FROM no_such_table"))
            root.set_attribute("http.response.status_code", 200)
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(url.replace(f":{engine.url.port}/", ":9/"), pool_size=1).connect()
    engine.dispose()


def test_sqlalchemy_on_postgresql_exports_and_records_the_same(postgres, make_harness):
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    from chokepoint.instrument.sqlalchemy_lean import install_lean_sqlalchemy

    results = []
    for lean in (False, True):
        harness = wire(make_harness, lean=lean)
        instrumentor = SQLAlchemyInstrumentor()
        instrumentor.instrument(tracer_provider=harness.lean_provider, meter_provider=NoOpMeterProvider())
        undo = install_lean_sqlalchemy()  # as the agent runs it
        try:
            database_requests(harness.tracer, postgres.url)
        finally:
            if undo is not None:
                undo()
            instrumentor.uninstrument()
        results.append(([comparable(s) for s in exported(harness)], metric_shape(harness)))
    (sdk_spans, sdk_metrics), (lean_spans, lean_metrics) = results
    assert lean_spans == sdk_spans
    assert lean_metrics == sdk_metrics
    names = [span["name"] for span in lean_spans]
    assert names.count("GET /stock") == 2 and names.count("connect") == 3 and len(names) == 2 + 3 + 7
    failed = [span for span in lean_spans if span["status"][0] is StatusCode.ERROR]
    assert {span["name"] for span in failed} == {"connect", "SELECT " + sa.make_url(postgres.url).database}
    assert sdk_metrics[signals.DB_CLIENT_OPERATION_DURATION]


def test_sdk_span_metrics_or_a_disabled_tracer_get_the_sdk_behaviour(make_harness, monkeypatch):
    from opentelemetry.sdk.trace import _TracerConfig
    from opentelemetry.trace import NonRecordingSpan

    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")  # the SDK's own span metrics: SDK spans
    provider = LeanTracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(harness.processor)
    assert not provider.lean and type(provider.get_tracer("t").start_span("x")) is _Span
    monkeypatch.delenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED")
    provider = LeanTracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(harness.processor)
    provider._set_tracer_configurator(tracer_configurator=lambda scope: _TracerConfig(is_enabled=scope.name != "off"))
    assert type(provider.get_tracer("off").start_span("x")) is NonRecordingSpan
    span = provider.get_tracer("on").start_span("x")
    assert type(span) is LeanSpan
    span.end()


def test_a_leaf_finished_after_its_request_is_still_measured_as_a_span(make_harness):
    """Leaves go into the request's record; one that finishes after the request ended (a
    statement still running in another thread) is made a span: measured, not lost."""
    from chokepoint.instrument.lean_spans import LeafTemplate, add_leaf, leaf_request

    harness = make_harness(AgentConfig(trace_sample_rate=1.0))
    provider = LeanTracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(harness.processor)
    tracer = provider.get_tracer("unit")
    template = LeafTemplate("SELECT chokepoint", {"db.system.name": "postgresql", "db.query.text": "SELECT 1"})
    assert leaf_request(tracer) is None  # outside a request: statements are spans
    with tracer.start_as_current_span("GET /r", kind=SpanKind.SERVER, attributes={"http.route": "/r"}):
        parent, request = leaf_request(tracer)
        add_leaf(request, (1 * MS, 3 * MS, template, parent, None, tracer))
        with tracer.start_as_current_span("work"):  # ends after the leaf (now, not at 3 ms)
            pass
        late = leaf_request(tracer)
    add_leaf(late[1], (2 * MS, 9 * MS, template, late[0], None, tracer))
    harness.flush()
    assert harness.metric_values("db.client.operation.duration") == {frozenset({"db.system.name": "postgresql", "db.query.text": "SELECT ?"}.items()): 2}
    exported = harness.exporter.get_finished_spans()
    assert [s.name for s in exported] == ["SELECT chokepoint", "work", "GET /r"]  # in end order; the late one is not in the kept trace
    (leaf,) = [s for s in exported if s.name == "SELECT chokepoint"]
    assert (leaf.parent.span_id, leaf.start_time, leaf.end_time, leaf.kind) == (parent.span_id, 1 * MS, 3 * MS, SpanKind.CLIENT)
