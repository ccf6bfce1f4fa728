import contextvars
import functools
import threading

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.instrument import context, signals
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.lean_spans import LeanSpan, LeanTracerProvider
from chokepoint.instrument.sampling import SlowTraceDecider, sanitized_copy

MS = 1_000_000  # ns


@pytest.fixture(autouse=True, params=["lean", "sdk"])
def spans(request, monkeypatch):
    """Every test on the agent's lean spans and on the SDK's (``CHOKEPOINT_SPANS=sdk``)."""
    import tests.instrument.conftest as harness_module

    monkeypatch.setattr(harness_module, "TracerProvider", functools.partial(LeanTracerProvider, lean=request.param == "lean"))
    return request.param


def request(harness, route="/items/{id}", duration_ms=10.0, start_ns=1_000 * MS, status=200, error=False, db_ms=(), http=None):
    """One server span with DB children (and optionally an HTTP client child), timestamps explicit."""
    tracer = harness.tracer
    root = tracer.start_span(
        f"GET {route}",
        kind=SpanKind.SERVER,
        start_time=start_ns,
        attributes={"http.request.method": "GET", "http.route": route, "http.response.status_code": status},
    )
    from opentelemetry import trace

    ctx = trace.set_span_in_context(root)
    cursor = start_ns
    for ms in db_ms:
        span = tracer.start_span(
            "SELECT", context=ctx, kind=SpanKind.CLIENT, start_time=cursor, attributes={"db.system.name": "postgresql", "db.query.text": "SELECT 1 WHERE a = 5"}
        )
        cursor += int(ms * MS)
        span.end(end_time=cursor)
    if http is not None:
        host, ms, code = http
        span = tracer.start_span(
            "GET",
            context=ctx,
            kind=SpanKind.CLIENT,
            start_time=cursor,
            attributes={"http.request.method": "GET", "server.address": host, "http.response.status_code": code},
        )
        if code >= 500:
            span.set_status(Status(StatusCode.ERROR))
        cursor += int(ms * MS)
        span.end(end_time=cursor)
    if error:
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=start_ns + int(duration_ms * MS))
    return root


def test_decider_uses_floor_until_enough_samples_then_rolling_percentile():
    decider = SlowTraceDecider(percentile=90, floor_s=1.0, min_samples=10)
    assert decider.observe("/a", 0.5) is False  # below the floor, no percentile yet
    assert decider.observe("/a", 1.5) is True  # above the floor
    for n in range(8):
        decider.observe("/a", 0.010 + n * 0.001)
    # 10 samples: 0.010..0.017, 0.5, 1.5 -> p90 is 0.5
    assert decider.threshold_s("/a") == 0.5
    assert decider.observe("/a", 0.6) is True
    assert decider.observe("/a", 0.4) is False
    assert decider.threshold_s("/other") == 1.0  # unseen route: the floor


def test_fast_traces_are_folded_and_not_exported(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    for n in range(20):
        request(harness, duration_ms=5, start_ns=(n + 1) * 1000 * MS, db_ms=(1,))
    harness.flush()
    assert harness.exporter.get_finished_spans() == ()
    assert harness.metric_values(signals.HTTP_SERVER_DURATION) == {
        frozenset({"http.route": "/items/{id}", "http.request.method": "GET", "http.response.status_code": 200}.items()): 20
    }


def test_errored_trace_is_exported_whole_with_reason(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    root = request(harness, status=500, error=True, db_ms=(1, 2))
    harness.flush()
    spans = harness.exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["GET /items/{id}", "SELECT", "SELECT"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert harness.metric_values(signals.AGENT_EXPORTED_TRACES) == {frozenset({(signals.ATTR_KEEP_REASON, "error")}): 1}
    # exported spans are sanitized copies
    assert {s.attributes.get("db.query.text") for s in spans if s.name == "SELECT"} == {"SELECT ? WHERE a = ?"}


def test_slow_trace_above_floor_is_exported(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0, slow_floor_ms=100))
    request(harness, duration_ms=5)
    request(harness, duration_ms=150, start_ns=5000 * MS)
    harness.flush()
    spans = harness.exporter.get_finished_spans()
    assert len(spans) == 1 and spans[0].end_time - spans[0].start_time == 150 * MS
    assert harness.metric_values(signals.AGENT_EXPORTED_TRACES) == {frozenset({(signals.ATTR_KEEP_REASON, "slow")}): 1}


def test_random_sampling_keeps_about_the_configured_fraction(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.1))
    for n in range(2000):
        request(harness, duration_ms=5, start_ns=(n + 1) * 1000 * MS)
    harness.flush()
    kept = len(harness.exporter.get_finished_spans())
    assert 140 <= kept <= 260  # 10% of 2000, seeded rng


def test_breakdown_counters_cover_every_request(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    request(harness, duration_ms=20, db_ms=(2, 3), http=("api.example.com", 10, 200))
    values = harness.metric_values(signals.REQUEST_BREAKDOWN_TIME)
    key = lambda component: frozenset({signals.ATTR_HTTP_ROUTE: "/items/{id}", signals.ATTR_COMPONENT: component, signals.ATTR_SLOW: False}.items())  # noqa: E731
    assert abs(values[key("db")] - 0.005) < 1e-9
    assert abs(values[key("http:api.example.com")] - 0.010) < 1e-9
    assert abs(values[key("self")] - 0.005) < 1e-9
    assert harness.metric_values(signals.REQUEST_DB_QUERIES) == {frozenset({(signals.ATTR_HTTP_ROUTE, "/items/{id}")}): 1}
    points = harness.metric_points(signals.REQUEST_DB_QUERIES)
    assert points[0].sum == 2


def test_pool_wait_reported_by_probes_lands_in_the_breakdown(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    tracer = harness.tracer
    root = tracer.start_span("GET /p", kind=SpanKind.SERVER, start_time=0, attributes={"http.route": "/p", "http.request.method": "GET"})
    assert context.current() is not None and context.current().route == "/p"
    context.record_component_time("pool_wait", 0.004)
    root.end(end_time=10 * MS)
    assert context.current() is None
    values = harness.metric_values(signals.REQUEST_BREAKDOWN_TIME)
    assert abs(values[frozenset({("http.route", "/p"), ("chokepoint.component", "pool_wait"), ("chokepoint.slow", False)})] - 0.004) < 1e-9
    assert abs(values[frozenset({("http.route", "/p"), ("chokepoint.component", "self"), ("chokepoint.slow", False)})] - 0.006) < 1e-9


def test_http_call_while_db_connection_held_is_flagged(make_harness):
    harness = make_harness()
    tracer = harness.tracer
    with tracer.start_as_current_span("GET /t", kind=SpanKind.SERVER, attributes={"http.route": "/t"}):
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "server.address": "a.example"}):
            pass
        context.db_connection_acquired()
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "server.address": "b.example"}):
            pass
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.method": "GET", "net.peer.name": "old.example"}):
            pass  # old semconv: an HTTP call too
        # not HTTP calls: statements on the held connection, a DB span that also names a method, other kinds
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql", "db.query.text": "SELECT 1"}):
            pass
        with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={"db.system": "elasticsearch", "http.method": "POST"}):
            pass
        with tracer.start_as_current_span("GET", kind=SpanKind.INTERNAL, attributes={"http.request.method": "GET", "server.address": "c.example"}):
            pass
        with tracer.start_as_current_span("connect", kind=SpanKind.CLIENT):
            pass
        context.db_connection_released()
    assert harness.metric_values(signals.HTTP_CLIENT_CALLS_IN_TRANSACTION) == {
        frozenset({signals.ATTR_SERVER_ADDRESS: "b.example", signals.ATTR_HTTP_ROUTE: "/t"}.items()): 1,
        frozenset({signals.ATTR_SERVER_ADDRESS: "old.example", signals.ATTR_HTTP_ROUTE: "/t"}.items()): 1,
    }


def test_queue_overflow_is_dropped_and_counted_never_blocking(make_harness):
    release = threading.Event()

    class BlockingExporter(InMemorySpanExporter):
        def export(self, spans):
            release.wait(10)
            return super().export(spans)

    harness = make_harness(AgentConfig(trace_sample_rate=1.0, export_queue_spans=3), exporter=BlockingExporter())
    for n in range(10):
        request(harness, start_ns=(n + 1) * 1000 * MS)  # 1 span per trace, all kept at rate 1.0
    dropped = harness.metric_values(signals.AGENT_DROPPED_SPANS)
    assert dropped[frozenset({(signals.ATTR_DROP_REASON, "queue_full")})] >= 6
    release.set()
    harness.flush()


def test_exporter_that_raises_or_fails_is_counted_and_never_reaches_the_app(make_harness):
    class BrokenExporter(InMemorySpanExporter):
        def export(self, spans):
            raise ConnectionError("sidecar down")

    harness = make_harness(AgentConfig(trace_sample_rate=1.0), exporter=BrokenExporter())
    request(harness)  # must not raise
    harness.processor.queue.export_pending()
    request(harness, start_ns=9000 * MS)
    harness.processor.queue.export_pending()
    dropped = harness.metric_values(signals.AGENT_DROPPED_SPANS)
    assert dropped[frozenset({(signals.ATTR_DROP_REASON, "export_failed")})] == 2

    class FailingExporter(InMemorySpanExporter):
        def export(self, spans):
            return SpanExportResult.FAILURE

    harness2 = make_harness(AgentConfig(trace_sample_rate=1.0), exporter=FailingExporter())
    request(harness2)
    harness2.processor.queue.export_pending()
    assert harness2.metric_values(signals.AGENT_DROPPED_SPANS) == {frozenset({(signals.ATTR_DROP_REASON, "export_failed")}): 1}


def test_processor_survives_a_broken_span(make_harness):
    harness = make_harness()

    class Broken:
        kind = SpanKind.SERVER

        @property
        def parent(self):
            raise RuntimeError("boom")

        @property
        def context(self):
            raise RuntimeError("boom")

    harness.processor.on_start(Broken())
    harness.processor.on_end(Broken())


def test_open_traces_are_bounded(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0, max_open_traces=2))

    def overlapping_requests():  # ended out of order: the request context is not restored
        spans = [harness.tracer.start_span(f"r{n}", kind=SpanKind.SERVER) for n in range(3)]
        for span in spans:
            span.end()

    contextvars.copy_context().run(overlapping_requests)
    assert harness.metric_values(signals.AGENT_DROPPED_SPANS) == {frozenset({(signals.ATTR_DROP_REASON, "too_many_open_traces")}): 1}


def test_sanitized_copy_keeps_identity_and_timing(make_harness, spans):
    harness = make_harness()
    span = harness.tracer.start_span("q", attributes={"url.full": "http://u:p@h/x?y=1", "tags": ["a", "b"]})
    span.end()
    assert (type(span) is LeanSpan) is (spans == "lean")
    copy = sanitized_copy(span)
    assert copy.context == span.context and copy.start_time == span.start_time and copy.end_time == span.end_time
    assert copy.attributes["url.full"] == "http://h/x" and copy.attributes["tags"] == ("a", "b")
    assert copy.resource is harness.tracer_provider.resource and copy.instrumentation_scope.name == "unit"
    assert copy is not span and type(copy).__name__ == "ReadableSpan"


def test_buffers_whose_root_never_ends_are_evicted_when_the_table_is_full(make_harness, monkeypatch):
    import chokepoint.instrument.sampling as sampling

    harness = make_harness(AgentConfig(trace_sample_rate=0.0, max_open_traces=2))
    # in a copied context: the abandoned roots' request contexts are never reset
    abandoned = contextvars.copy_context().run(lambda: [harness.tracer.start_span(f"stream{n}", kind=SpanKind.SERVER) for n in range(2)])
    monkeypatch.setattr(sampling, "STALE_TRACE_S", -1.0)  # everything open counts as stale now
    fresh = harness.tracer.start_span("next", kind=SpanKind.SERVER)
    fresh.end()
    assert harness.metric_values(signals.AGENT_DROPPED_SPANS) == {frozenset({(signals.ATTR_DROP_REASON, "root_never_ended")}): 2}
    assert len(harness.processor._open) == 0
    for span in abandoned:
        span.end()  # late ends of evicted roots are harmless


def test_requests_without_a_route_never_label_metrics_with_the_raw_path(make_harness):
    harness = make_harness()
    for path in ("/wp-admin/a", "/.env", "/x/y/z"):
        span = harness.tracer.start_span(
            f"GET {path}", kind=SpanKind.SERVER, attributes={"http.request.method": "GET", "url.path": path, "http.response.status_code": 404}
        )
        span.end()
    harness.tracer.start_span("GET", kind=SpanKind.SERVER, attributes={"http.request.method": "GET"}).end()
    routes = {dict(key)["http.route"] for key in harness.metric_values(signals.HTTP_SERVER_DURATION)}
    assert routes == {"GET (unrouted)", "GET"}
