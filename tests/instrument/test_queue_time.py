"""Queue time from X-Request-Start / X-Queue-Start: parsing, the processor's histogram and
breakdown component, and the lean ASGI server span carrying the header."""

import io
import os
import time

import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from chokepoint.instrument import context, queue_time, signals
from chokepoint.instrument.asgi import install_lean_asgi
from chokepoint.instrument.config import AgentConfig
from tests.instrument.test_asgi import call
from tests.instrument.test_sampling import spans  # noqa: F401 (autouse: every test on lean and on SDK spans)

MS = 1_000_000  # ns
START_NS = 1_764_000_000 * 1_000_000_000  # a server span's start, ns since the epoch
START_S = START_NS / 1e9


@pytest.mark.parametrize(
    "value",
    [
        f"t={START_S - 0.25:.3f}",
        f"t={int((START_S - 0.25) * 1e3)}",
        f"t={int((START_S - 0.25) * 1e6)}",
        f"{int((START_S - 0.25) * 1e3)}",
        (f"t={START_S - 0.25:.3f}",),
    ],
    ids=["seconds", "milliseconds", "microseconds", "no-prefix", "captured-tuple"],
)
def test_unit_is_told_by_magnitude(value):
    waited, rejected = queue_time.queue_seconds(value, START_NS)
    assert rejected is None
    assert waited == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("t=abc", queue_time.REJECT_UNPARSABLE),
        ("", queue_time.REJECT_UNPARSABLE),
        ((), queue_time.REJECT_UNPARSABLE),
        ("t=-5", queue_time.REJECT_UNPARSABLE),
        (f"t={START_S + 2:.3f}", queue_time.REJECT_NEGATIVE),  # the proxy's clock ahead
        (f"t={START_S - 7200:.3f}", queue_time.REJECT_TOO_LARGE),  # two hours: a wrong unit or stale clock
    ],
)
def test_values_that_cannot_be_a_queue_time_are_rejected(value, reason):
    assert queue_time.queue_seconds(value, START_NS) == (None, reason)


def test_skew_within_the_tolerance_is_zero_queue_time():
    assert queue_time.queue_seconds(f"t={START_S + 0.001:.4f}", START_NS) == (0.0, None)


def server_request(harness, header_attributes, duration_ms=10.0):
    tracer = harness.tracer
    attributes = {"http.request.method": "GET", "http.route": "/q", "http.response.status_code": 200, **header_attributes}
    root = tracer.start_span("GET /q", kind=SpanKind.SERVER, start_time=START_NS, attributes=attributes)
    root.end(end_time=START_NS + int(duration_ms * MS))


def breakdown(harness):
    return {dict(key)[signals.ATTR_COMPONENT]: value for key, value in harness.metric_values(signals.REQUEST_BREAKDOWN_TIME).items()}


def test_queue_time_goes_to_its_histogram_and_adds_to_the_breakdown(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    server_request(harness, {"http.request.header.x_request_start": (f"t={int((START_S - 0.040) * 1e3)}",)})
    server_request(harness, {"http.request.header.x_queue_start": (f"t={int((START_S - 0.020) * 1e6)}",)})
    points = harness.metric_points(signals.SERVER_QUEUE_WAIT_TIME)
    assert [dict(p.attributes) for p in points] == [{signals.ATTR_HTTP_ROUTE: "/q"}]
    assert points[0].count == 2
    assert points[0].sum == pytest.approx(0.060, abs=2e-3)
    components = breakdown(harness)
    assert components["queue"] == pytest.approx(0.060, abs=2e-3)
    assert components["self"] == pytest.approx(0.020, abs=1e-9)  # the span's own 2 × 10 ms, not reduced by the queue
    assert harness.metric_values(signals.SERVER_QUEUE_START_REJECTED) == {}


def test_requests_without_the_header_have_no_queue_time(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    server_request(harness, {})
    assert harness.metric_points(signals.SERVER_QUEUE_WAIT_TIME) == []
    assert "queue" not in breakdown(harness)


def test_absurd_values_are_counted_not_recorded(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    server_request(harness, {"http.request.header.x_request_start": (f"t={START_S + 60:.3f}",)})
    server_request(harness, {"http.request.header.x_request_start": (f"t={START_S - 86400:.3f}",)})
    server_request(harness, {"http.request.header.x_request_start": ("t=soon",)})
    assert harness.metric_points(signals.SERVER_QUEUE_WAIT_TIME) == []
    assert "queue" not in breakdown(harness)
    rejected = {dict(key)[signals.ATTR_DROP_REASON]: value for key, value in harness.metric_values(signals.SERVER_QUEUE_START_REJECTED).items()}
    assert rejected == {queue_time.REJECT_NEGATIVE: 1, queue_time.REJECT_TOO_LARGE: 1, queue_time.REJECT_UNPARSABLE: 1}
    assert context.current() is None


def test_lean_asgi_span_carries_the_request_start_header(make_harness):
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))
    undo = install_lean_asgi(harness.tracer_provider)
    try:
        app = FastAPI()

        @app.get("/q")
        async def q():
            return {}

        sent_ms = int(time.time() * 1e3) - 30_000  # 30 s in a proxy's queue
        assert call(app, "/q", headers=[(b"x-request-start", f"t={sent_ms}".encode())]) == 200
        assert call(app, "/q") == 200
    finally:
        undo()
    points = harness.metric_points(signals.SERVER_QUEUE_WAIT_TIME)
    assert len(points) == 1 and points[0].count == 1
    assert 30.0 <= points[0].sum < 30.0 + 60.0  # the header's age when the span started (a busy host may add seconds)
    assert breakdown(harness)["queue"] == pytest.approx(points[0].sum)


def test_upstream_wsgi_server_span_gives_the_queue_time(make_harness, monkeypatch):
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    monkeypatch.setenv(queue_time.CAPTURE_REQUEST_ENV, "X-Custom")
    queue_time.capture_request_start(os.environ)
    assert os.environ[queue_time.CAPTURE_REQUEST_ENV] == "X-Custom,x-request-start,x-queue-start"
    harness = make_harness(AgentConfig(trace_sample_rate=0.0))

    def wsgi_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = OpenTelemetryMiddleware(wsgi_app, tracer_provider=harness.tracer_provider)
    sent_us = int(time.time() * 1e6) - 2_000_000  # 2 s in the queue, Apache's microseconds
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/w", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "HTTP_X_QUEUE_START": f"t={sent_us}",
    }  # fmt: skip
    b"".join(app(environ, lambda status, headers, exc_info=None: None))
    points = harness.metric_points(signals.SERVER_QUEUE_WAIT_TIME)
    assert len(points) == 1 and points[0].count == 1
    assert 2.0 <= points[0].sum < 2.0 + 60.0
    assert breakdown(harness)["queue"] == pytest.approx(points[0].sum)
