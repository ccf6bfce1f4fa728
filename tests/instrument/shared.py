"""Helpers shared by the agent's tests.

Integration tests (FastAPI, Flask, Kafka probes)::

    seed_table(postgres, "items")            # table of 100 rows (id, 'item-<id>'), recreated
    point(sink, metric, **attributes)        # the one OTLP point with exactly these attributes
    topic, produce = kafka_topic(kafka, "orders")   # fresh single-partition topic; produce(n) flushes

The lean HTTP client paths (``test_httpx_lean``, ``test_requests_lean``, ``test_urllib3_lean``)
compare each lean path with its upstream instrumentor against a real local :class:`Server`::

    from tests.instrument import shared
    from tests.instrument.shared import refused_url_fixture, server_fixture, stable_http_fixture  # noqa: F401 - fixtures

    make = lambda lean: shared.Traced(lean, install)   # install(traced, lean) -> [undo, ...]
    spans, arrived, outcomes, flags = shared.same_as_upstream(server, refused_url, calls, make)
    shared.run_calls(lean, server, refused_url, calls, make)   # one path alone
    shared.assert_installs_once(install_lean, [(cls, "method")], instrumentor)   # patch bookkeeping
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def seed_table(postgres, table: str, prefix: str | None = None):
    """(Re)create ``table`` (``id int PRIMARY KEY, name text``) with ids 0–99; returns ``postgres``."""
    prefix = prefix or table.rstrip("s")
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute(f"INSERT INTO {table} SELECT g, '{prefix}-' || g FROM generate_series(0, 99) g")
    return postgres


def point(sink, metric: str, **attributes):
    """The point of ``metric`` whose attributes are exactly ``attributes`` (``None`` if absent)."""
    matches = [p for p in sink.points(metric) if p.attributes == attributes]
    assert len(matches) <= 1, f"{len(matches)} points of {metric} with {attributes}"
    return matches[0] if matches else None


def kafka_topic(kafka, prefix: str, value_prefix: str | None = None):
    """A new one-partition topic ``<prefix>-<random>`` and ``produce(n)``, which sends n
    records (``<value_prefix>-<i>``) and waits until the broker has them."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap})
    value_prefix = value_prefix or prefix.rstrip("s")

    def produce(n: int) -> None:
        for i in range(n):
            producer.produce(topic, value=f"{value_prefix}-{i}".encode())
        assert producer.flush(30) == 0

    return topic, produce


# --- the lean HTTP client paths (test_httpx_lean, test_requests_lean, test_urllib3_lean) ---

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"
INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Server:
    """A real local HTTP server answering every method: /fail with 500, /slow after 1 s,
    /redirect with 302 to /stock, else 200; records each request's (method, path, headers)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                recorded.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith("/slow"):
                    time.sleep(1.0)  # the server's answer, not a wait in the test: the client times out first
                body = b'{"ok": true}'
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/stock")
                else:
                    self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Served-By", "test, local")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client timed out and left (/slow)
                    self.wfile.write(body)

            do_GET = do_POST = do_PURGE = answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


class ExtraPropagator(TextMapPropagator):
    """A configured non-W3C propagator: its header must arrive too."""

    def extract(self, carrier, context=None, getter=None):
        return context

    def inject(self, carrier, context=None, setter=None):
        span = trace.get_current_span(context)
        carrier["x-extra-trace"] = format(span.get_span_context().span_id, "016x")

    @property
    def fields(self):
        return {"x-extra-trace"}


@pytest.fixture(scope="module", name="server")
def server_fixture():
    """A :class:`Server` for the test module."""
    s = Server()
    yield s
    s.close()


@pytest.fixture(name="refused_url")
def refused_url_fixture():
    """A URL on a local port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@pytest.fixture(name="stable_http", params=["w3c", "w3c+extra"])
def stable_http_fixture(request, monkeypatch):
    """Both paths in ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (chokepoint's default), the lean
    switches unset, with the default propagators (W3C trace context + baggage) or those plus
    another one."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    for switch in ("CHOKEPOINT_HTTPX", "CHOKEPOINT_REQUESTS", "CHOKEPOINT_URLLIB3", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(switch, raising=False)
    _OpenTelemetrySemanticConventionStability._initialize()
    mapping = _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    monkeypatch.setitem(mapping, _OpenTelemetryStabilitySignalType.HTTP, _StabilityMode.HTTP)
    previous = propagate.get_global_textmap()
    propagators = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    if request.param == "w3c+extra":
        propagators.append(ExtraPropagator())
    propagate.set_global_textmap(CompositePropagator(propagators))
    yield request.param
    propagate.set_global_textmap(previous)


class Traced:
    """One path (lean or upstream) over an in-memory exporter; ``install(traced, lean)``
    installs it on ``traced.provider`` and returns what undoes it (callables, in order)."""

    def __init__(self, lean: bool, install: Callable[[Traced, bool], list[Callable[[], object]]]):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")
        self._undo = install(self, lean)

    def close(self):
        for undo in reversed(self._undo):
            undo()

    def without_timeout(self) -> dict:
        """The timeout flag's counts (paths that count none: empty)."""
        return {}


def lean_installed(undo: Callable[[], None] | None) -> Callable[[], None]:
    """``undo`` of a lean path that must have been installed."""
    assert undo is not None
    return undo


def upstream_installed(instrumentor, provider, **options) -> Callable[[], None]:
    """The upstream ``instrumentor`` on ``provider`` (no-op meters); its ``uninstrument``."""
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), **options)
    return instrumentor.uninstrument


def run_calls(lean: bool, server: Server, refused: str, calls, make) -> tuple[list, list, list, dict]:
    """Spans (ids made relative), requests that arrived, outcomes and the timeout flags of
    ``calls(server.url, refused)`` under the path ``make(lean)`` installs (a :class:`Traced`),
    inside a server span continuing an incoming trace (tracestate, baggage ``tenant=t1``)."""
    traced = make(lean)
    server.requests.clear()
    incoming = propagate.extract({"traceparent": INCOMING, "tracestate": "vendor=x,other=y"})
    try:
        with traced.tracer.start_as_current_span("request", context=incoming) as parent:
            token = otel_context.attach(baggage.set_baggage("tenant", "t1"))
            try:
                outcomes = calls(server.url, refused)
            finally:
                otel_context.detach(token)
        flags = traced.without_timeout()
    finally:
        traced.close()
    spans = [s for s in traced.exporter.get_finished_spans() if s.name != "request"]
    port = str(server.port)
    ids = {s.context.span_id: f"span{i}" for i, s in enumerate(spans)} | {parent.get_span_context().span_id: "request"}
    described = [
        {
            "name": s.name,
            "kind": s.kind,
            "status": (s.status.status_code, s.status.description),
            "attributes": {k: str(v).replace(port, "PORT") for k, v in s.attributes.items()},
            "events": [(e.name, e.attributes.get("exception.type")) for e in s.events],
            "parent": ids.get(s.parent.span_id) if s.parent else None,
            "trace": s.context.trace_id == parent.get_span_context().trace_id,
            "scope": (s.instrumentation_scope.name, s.instrumentation_scope.version, s.instrumentation_scope.schema_url),
            "id": ids[s.context.span_id],
        }
        for s in spans
    ]
    by_id = {format(s.context.span_id, "016x"): ids[s.context.span_id] for s in spans}
    arrived = []
    for method, path, headers in server.requests:
        traceparent = headers.get("traceparent", "")
        arrived.append(
            {
                "method": method,
                "path": path,
                "traceparent_span": by_id.get(traceparent.split("-")[2]) if traceparent else None,
                "extra_span": by_id.get(headers.get("x-extra-trace")),
                "baggage": headers.get("baggage"),
                "tracestate": headers.get("tracestate"),
                "trace": traceparent.split("-")[1] if traceparent else None,
                "flags": traceparent.split("-")[3] if traceparent else None,
                "headers": sorted(k for k in headers if k not in ("traceparent", "x-extra-trace", "baggage", "tracestate")),
            }
        )
    return described, arrived, outcomes, flags


def same_as_upstream(server: Server, refused: str, calls, make) -> tuple[list, list, list, dict]:
    """:func:`run_calls` on the upstream path, then on the lean one; asserts both made the
    same spans, sent the same requests (headers, trace context) and got the same outcomes.
    Returns the lean run."""
    upstream = run_calls(False, server, refused, calls, make)
    lean = run_calls(True, server, refused, calls, make)
    assert lean[0] == upstream[0]
    assert lean[1] == upstream[1]
    assert lean[2] == upstream[2]
    return lean


def assert_installs_once(install: Callable[[], Callable[[], None] | None], targets: list[tuple[type, str]], instrumentor) -> None:
    """``install()`` wraps each ``(class, method)`` of ``targets``, a second install does
    nothing, its undo puts the originals back; and over the upstream ``instrumentor`` it
    installs nothing (one span per call, not two)."""
    originals = [owner.__dict__[name] for owner, name in targets]
    undo = install()
    assert [owner.__dict__[name].__wrapped__ for owner, name in targets] == originals
    assert install() is None  # once
    undo()
    assert [owner.__dict__[name] for owner, name in targets] == originals
    uninstrument = upstream_installed(instrumentor, TracerProvider(shutdown_on_exit=False))
    try:
        assert install() is None
    finally:
        uninstrument()
