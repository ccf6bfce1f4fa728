"""The lean FastAPI/Starlette server span, driven in-process through the ASGI interface."""

import asyncio
import contextlib

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.routing import Route

from chokepoint.instrument.asgi import install_lean_asgi, resolve_route


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    undo = install_lean_asgi(provider)
    yield exporter
    undo()


def call(app, path, method="GET", headers=()):
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "root_path": "", "query_string": b"secret=1", "headers": list(headers),
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def run():
        with contextlib.suppress(RuntimeError):  # Starlette re-raises after answering 500
            await app(scope, receive, send)

    asyncio.run(run())
    return sent[0]["status"] if sent else None


def make_app():
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    @app.get("/missing")
    async def missing():
        raise HTTPException(404)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    return app


def test_one_server_span_with_route_status_and_size(spans):
    app = make_app()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert call(app, "/items/7", headers=[(b"traceparent", parent.encode()), (b"authorization", b"Bearer x")]) == 200
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /items/{item_id}" and span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331" and span.parent.is_remote
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.path": "/items/7",
        "url.scheme": "http",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
        "http.response.header.content-length": ("8",),  # {"id":7}
    }
    assert span.status.status_code is StatusCode.UNSET


def test_client_errors_are_not_span_errors_server_errors_are(spans):
    app = make_app()
    assert call(app, "/missing") == 404
    assert call(app, "/boom") == 500
    missing, boom = spans.get_finished_spans()
    assert missing.attributes["http.response.status_code"] == 404 and missing.status.status_code is StatusCode.UNSET
    assert boom.attributes["http.response.status_code"] == 500 and boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in boom.events] == ["exception"]


def test_unmatched_path_has_no_route_and_plain_starlette_works(spans):
    assert call(make_app(), "/nope") == 404
    starlette_app = Starlette(routes=[Route("/hello/{name}", lambda request: PlainTextResponse("hi"))])
    assert call(starlette_app, "/hello/bob") == 200
    unmatched, hello = spans.get_finished_spans()
    assert unmatched.name == "GET" and "http.route" not in unmatched.attributes
    assert hello.name == "GET /hello/{name}" and hello.attributes["http.route"] == "/hello/{name}"


def test_undo_restores_the_classes():
    provider = TracerProvider(shutdown_on_exit=False)
    original = FastAPI.__dict__["__call__"]
    undo = install_lean_asgi(provider)
    assert FastAPI.__dict__["__call__"] is not original
    assert install_lean_asgi(provider) is None  # already patched: no double wrap
    undo()
    assert FastAPI.__dict__["__call__"] is original


def test_resolve_route():
    app = make_app()
    assert resolve_route(app, {"type": "http", "path": "/items/3", "method": "GET", "root_path": ""}) == "/items/{item_id}"
    assert resolve_route(app, {"type": "http", "path": "/zzz", "method": "GET", "root_path": ""}) is None


def reference_route(app, scope):
    """Every route's own ``matches``, no short cut: what ``resolve_route`` must answer."""
    from starlette.routing import Match

    partial = None
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route.path or scope.get("path")
        if match is Match.PARTIAL and partial is None:
            partial = route.path
    return partial


def test_resolve_route_short_cut_answers_as_every_routes_matches():
    from fastapi.routing import APIRoute
    from starlette.routing import Mount

    class TimedRoute(APIRoute):  # a custom route class: always asked
        pass

    app = make_app()
    app.router.route_class = TimedRoute

    @app.post("/orders/{order_id}")
    async def order(order_id: int):
        return {}

    app.router.routes.append(Route("/count/{n:int}", lambda request: PlainTextResponse("n")))
    app.router.routes.append(Mount("/admin", routes=[Route("/users/{uid}", lambda request: PlainTextResponse("u"))]))
    paths = ["/items/3", "/items/", "/orders/9", "/count/12", "/count/x", "/admin/users/7", "/admin/nope", "/docs", "/zzz", "/"]
    checked = 0
    for root_path in ("", "/api"):
        for path in paths:
            for method in ("GET", "POST", "DELETE"):
                scope = {"type": "http", "path": root_path + path, "method": method, "root_path": root_path}
                assert resolve_route(app, dict(scope)) == reference_route(app, dict(scope)), scope
                checked += 1
    assert checked == 60
    get = {"type": "http", "path": "/orders/9", "root_path": ""}
    assert resolve_route(app, {**get, "method": "GET"}) == "/orders/{order_id}"  # PARTIAL: wrong method, the route still
    assert resolve_route(app, {**get, "path": "/api/count/12", "root_path": "/api", "method": "GET"}) == "/count/{n:int}"
    assert resolve_route(app, {**get, "path": "/admin/users/7", "method": "GET"}) == "/admin"


def test_without_incoming_context_the_span_is_a_root_even_inside_another_span(spans):
    outer = TracerProvider(shutdown_on_exit=False).get_tracer("outer")
    with outer.start_as_current_span("outer"):
        assert call(make_app(), "/items/1") == 200
        assert call(make_app(), "/items/2", headers=[(b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]) == 200
    root, child = spans.get_finished_spans()
    assert root.parent is None
    assert format(child.parent.span_id, "016x") == "b7ad6b7169203331"


def test_another_global_propagator_is_asked_even_without_w3c_headers(spans):
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))

    class Fixed(TextMapPropagator):  # a propagator that always finds a parent
        def extract(self, carrier, context=None, getter=None):
            return set_span_in_context(NonRecordingSpan(remote))

        def inject(self, carrier, context=None, setter=None):
            pass

        @property
        def fields(self):
            return set()

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(Fixed())
    try:
        assert call(make_app(), "/items/1") == 200
    finally:
        propagate.set_global_textmap(previous)
    (span,) = spans.get_finished_spans()
    assert span.parent.span_id == 0x5678 and span.context.trace_id == 0x1234
