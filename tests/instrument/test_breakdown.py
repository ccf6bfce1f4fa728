from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.instrument.breakdown import classify, compute_breakdown
from chokepoint.instrument.context import RequestContext

MS = 1_000_000


class Recorder(SpanProcessor):
    def __init__(self):
        self.spans = []

    def on_end(self, span):
        self.spans.append(span)


def make_tracer():
    provider = TracerProvider(shutdown_on_exit=False)
    recorder = Recorder()
    provider.add_span_processor(recorder)
    return provider.get_tracer("t"), recorder


def child(tracer, parent, name, start_ms, end_ms, kind=SpanKind.CLIENT, status=None, **attributes):
    span = tracer.start_span(name, context=trace.set_span_in_context(parent), kind=kind, start_time=int(start_ms * MS), attributes=attributes)
    if status:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=int(end_ms * MS))
    return span


def test_components_add_up_to_the_request_duration():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    child(tracer, root, "SELECT", 1, 3, **{"db.system.name": "postgresql", "db.query.text": "SELECT 1"})
    child(tracer, root, "SELECT", 4, 8, **{"db.system.name": "postgresql", "db.query.text": "SELECT 2"})
    child(tracer, root, "GET", 10, 30, **{"http.request.method": "GET", "server.address": "pay.example"})
    child(tracer, root, "orders send", 31, 33, kind=SpanKind.PRODUCER, **{"messaging.system": "kafka"})
    root.end(end_time=50 * MS)
    request = RequestContext(route="/x", component_seconds={"pool_wait": 0.005, "db": 99.0})
    result = compute_breakdown(root, recorder.spans[:-1], request)
    assert result.total_s == 0.050
    assert result.db_queries == 2
    components = {k: round(v, 9) for k, v in result.components.items()}
    # "db" from the request context is ignored: spans are the source of truth for DB time
    assert components == {"db": 0.006, "http:pay.example": 0.020, "kafka": 0.002, "pool_wait": 0.005, "self": 0.017}
    assert abs(sum(result.components.values()) - result.total_s) < 1e-9


def test_nested_spans_of_the_same_kind_count_once():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    outer = tracer.start_span(
        "GET",
        context=trace.set_span_in_context(root),
        kind=SpanKind.CLIENT,
        start_time=1 * MS,
        attributes={"http.request.method": "GET", "server.address": "a"},
    )
    child(tracer, outer, "GET", 2, 9, **{"http.request.method": "GET", "server.address": "a"})  # urllib3 under requests
    outer.end(end_time=10 * MS)
    root.end(end_time=20 * MS)
    result = compute_breakdown(root, recorder.spans[:-1])
    assert round(result.components["http:a"], 9) == 0.009
    assert round(result.components["self"], 9) == 0.011


def test_connect_is_db_time_but_not_a_query():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    child(tracer, root, "connect", 0, 1, **{"db.system.name": "postgresql"})
    child(tracer, root, "SELECT", 1, 2, **{"db.system.name": "postgresql", "db.query.text": "SELECT 1"})
    root.end(end_time=5 * MS)
    spans = recorder.spans[:-1]
    assert [entry[1:] for entry in map(classify, spans)] == [("db", "connect"), ("db", None)]
    result = compute_breakdown(root, spans)
    assert result.db_queries == 1 and round(result.components["db"], 9) == 0.002


def test_overlapping_calls_never_make_self_negative():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    for _ in range(3):  # three concurrent 8 ms calls in a 10 ms request
        child(tracer, root, "GET", 1, 9, **{"http.request.method": "GET", "server.address": "a"})
    root.end(end_time=10 * MS)
    result = compute_breakdown(root, recorder.spans[:-1])
    assert result.components["self"] == 0.0


def test_identical_call_after_a_failure_counts_as_a_retry():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    attrs = {"http.request.method": "GET", "server.address": "pay", "url.full": "http://pay/charge"}
    child(tracer, root, "GET", 1, 2, status="error", **attrs, **{"http.response.status_code": 503})
    child(tracer, root, "GET", 3, 4, **attrs, **{"http.response.status_code": 200})
    child(tracer, root, "GET", 5, 6, **attrs, **{"http.response.status_code": 200})  # repeated after success: not a retry
    root.end(end_time=10 * MS)
    assert compute_breakdown(root, recorder.spans[:-1]).retried_calls == {"pay": 1}


def test_connect_inside_a_pool_checkout_is_not_counted_twice():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    child(tracer, root, "connect", 1, 4, **{"db.system.name": "postgresql"})  # opened during the checkout
    child(tracer, root, "SELECT", 5, 6, **{"db.system.name": "postgresql", "db.query.text": "SELECT 1"})
    root.end(end_time=10 * MS)
    request = RequestContext(route="/x", component_seconds={"pool_wait": 0.004})  # checkout took 4 ms incl. connect
    result = compute_breakdown(root, recorder.spans[:-1], request)
    assert {k: round(v, 9) for k, v in result.components.items()} == {"db": 0.004, "pool_wait": 0.001, "self": 0.005}


def test_a_pool_wait_inside_the_engine_connect_span_stays_pool_wait():
    tracer, recorder = make_tracer()
    root = tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=0)
    child(tracer, root, "connect", 0, 6, **{"db.system.name": "postgresql"})  # Engine.connect(): checkout incl. 5 ms wait
    child(tracer, root, "SELECT", 6, 7, **{"db.system.name": "postgresql", "db.query.text": "SELECT 1"})
    root.end(end_time=10 * MS)
    request = RequestContext(route="/x", component_seconds={"pool_wait": 0.005})
    result = compute_breakdown(root, recorder.spans[:-1], request)
    assert {k: round(v, 9) for k, v in result.components.items()} == {"db": 0.002, "pool_wait": 0.005, "self": 0.003}
