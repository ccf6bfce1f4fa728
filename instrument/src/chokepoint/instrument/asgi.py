"""Lean server spans for FastAPI and Starlette (replaces the upstream ASGI middleware).

Why: the upstream ``OpenTelemetryMiddleware`` (with the FastAPI instrumentor's route
matching, ~15 request attributes set twice, semconv helpers, its own histograms and
response-header propagation) does far more than chokepoint needs: one server span with the
method, route, path, status and response size/encoding, and the incoming trace context
(its cost against upstream's: docs/BENCHMARKS.md, "Agent overhead").

Usage (the agent does this unless ``CHOKEPOINT_ASGI=upstream``)::

    undo = install_lean_asgi()     # patches FastAPI.__call__ / Starlette.__call__ (class level)

Per request (``http`` scopes only; websockets and lifespan pass through):

- the W3C ``traceparent``/``tracestate``/``baggage`` headers are extracted with the global
  propagator; the span is ``SERVER``, named ``"{method} {route}"``;
- ``http.route`` is resolved before the app runs by matching the app's routes (as the
  upstream FastAPI instrumentor does), so probes and flags see the route;
- attributes: ``http.request.method``, ``url.path``, ``url.scheme``, ``http.route``,
  ``http.response.status_code``, ``http.response.header.content-length`` /
  ``content-encoding`` (for the response size metric), ``error.type`` on failure;
  ``http.request.header.x_request_start`` / ``x_queue_start`` when the request carries
  ``X-Request-Start`` / ``X-Queue-Start`` (the queue time before the span,
  :mod:`chokepoint.instrument.queue_time`; exported only if the header allow-list names them);
- an exception is recorded on the span (status ERROR, 500) and re-raised unchanged;
- FastAPI's own built-in telemetry is told to step aside for that request
  (``scope["fastapi.telemetry"] = None``) so there is one server span, not two.

With ``CHOKEPOINT_ASGI=upstream`` the upstream FastAPI/Starlette instrumentors are used
instead (with ``exclude_spans=["receive", "send"]``).

Per request it does as little as it can: route matching skips, without building a match,
the plain Starlette/FastAPI routes whose path regex misses (FastAPI's docs routes, every
other route); the response attributes go to the span in one ``set_attributes`` at the end;
a request without ``traceparent``/``tracestate``/``baggage`` under the default propagators
starts from the empty context their extraction returns, without calling them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.instrument import queue_time
from chokepoint.instrument.propagation import is_default_w3c

_log = logging.getLogger(__name__)

TRACER_NAME = "chokepoint.instrument.asgi"
_PROPAGATION_HEADERS = (b"traceparent", b"tracestate", b"baggage")
_REQUEST_START_ATTRIBUTE = dict(zip(queue_time.HEADERS, queue_time.REQUEST_START_KEYS, strict=True))
_WATCHED_HEADERS = frozenset((*_PROPAGATION_HEADERS, *queue_time.HEADERS))
_ERROR = Status(StatusCode.ERROR)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def _prefilter():
    """(``Match``, route types whose ``matches`` is NONE whenever ``path_regex`` misses, the
    same with FastAPI's ``APIRoute``, ``get_route_path``, FastAPI's effective-route-context
    lookup or ``None``); ``Match`` is ``None`` when Starlette is missing."""
    try:
        from starlette.routing import Match, Mount, Route, get_route_path
    except ImportError:
        return None, frozenset(), frozenset(), None, None
    quick = frozenset({Route, Mount})
    try:
        from fastapi.routing import APIRoute, _get_scope_effective_route_context
    except ImportError:
        return Match, quick, quick, get_route_path, None
    return Match, quick, quick | {APIRoute}, get_route_path, _get_scope_effective_route_context


_PREFILTER = None


def resolve_route(app, scope) -> str | None:
    """The route template the app will dispatch ``scope`` to, or ``None``.

    Each route's own ``matches(scope)`` decides, as Starlette's router and the upstream
    FastAPI instrumentor do; a plain Starlette ``Route``/``Mount`` (and a FastAPI ``APIRoute``
    outside an effective route context) whose path regex misses the path is skipped without
    building its match (what ``matches`` would answer: no match).
    """
    global _PREFILTER
    if _PREFILTER is None:
        _PREFILTER = _prefilter()
    Match, quick, quick_api, get_route_path, effective_context = _PREFILTER
    if Match is None:
        return None
    if effective_context is not None and effective_context(scope) is None:
        quick = quick_api
    route_path = get_route_path(scope) if get_route_path is not None else None
    partial = None
    for route in getattr(getattr(app, "router", None), "routes", ()):
        try:
            if route_path is not None and type(route) in quick and route.path_regex.match(route_path) is None:
                continue
            match, _ = route.matches(scope)
        except Exception:  # a custom route type that can't match this scope
            continue
        if match is Match.FULL:
            return getattr(route, "path", None) or scope.get("path")
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial


_DEFAULT_TEXTMAP: list = [None, False]  # [propagator checked, is it the default W3C pair]


def _default_textmap() -> bool:
    """Whether the global propagator is the default W3C trace context + baggage pair, which
    extracts an empty context from a request without their headers."""
    textmap = propagate.get_global_textmap()
    if textmap is not _DEFAULT_TEXTMAP[0]:
        _DEFAULT_TEXTMAP[:] = [textmap, is_default_w3c(textmap)]
    return _DEFAULT_TEXTMAP[1]


def _scan(headers) -> tuple[dict[str, str], dict]:
    """(the trace-context headers as a carrier, the request-start headers as span attributes)."""
    carrier: dict[str, str] = {}
    stamps: dict = {}
    for key, value in headers:
        if key in _WATCHED_HEADERS:
            if key in _PROPAGATION_HEADERS:
                carrier[key.decode("latin-1")] = value.decode("latin-1")
            else:
                stamps.setdefault(_REQUEST_START_ATTRIBUTE[key], (value.decode("latin-1"),))
    return carrier, stamps


def make_call(original: Callable, tracer_provider=None):
    """Wrap an ASGI application class's ``__call__`` with a lean server span."""
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or "chokepoint.span" in scope:
            return await original(self, scope, receive, send)
        scope["fastapi.telemetry"] = None  # FastAPI's built-in telemetry: one server span is enough
        method = scope.get("method", "")
        if method not in _KNOWN_METHODS:
            method = "_OTHER"
        route = resolve_route(self, scope)
        attributes = {"http.request.method": method, "url.path": scope.get("path", ""), "url.scheme": scope.get("scheme", "http")}
        if route:
            attributes["http.route"] = route
        carrier, stamps = _scan(scope.get("headers") or ())
        if stamps:  # X-Request-Start / X-Queue-Start, as the upstream server instrumentations capture them
            attributes.update(stamps)
        parent = propagate.extract(carrier) if carrier or not _default_textmap() else Context()
        span = tracer.start_span(f"{method} {route}" if route else method, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        scope["chokepoint.span"] = span  # mounted sub-apps do not open a second span
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        status_code = None
        ended: dict = {}  # attributes set once, at the end (one SDK call), in the order they were seen

        async def send_with_status(message):
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                for key, value in message.get("headers") or ():
                    if key == b"content-length":
                        ended["http.response.header.content-length"] = (value.decode("latin-1"),)
                    elif key == b"content-encoding":
                        ended["http.response.header.content-encoding"] = (value.decode("latin-1"),)
            await send(message)

        try:
            await original(self, scope, receive, send_with_status)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            ended["error.type"] = type(exc).__qualname__
            if status_code is None:
                status_code = 500
            raise
        finally:
            if status_code is not None:
                ended["http.response.status_code"] = status_code
                if status_code >= 500:
                    span.set_status(_ERROR)
                    if "error.type" not in ended:
                        ended["error.type"] = str(status_code)
            if ended:
                span.set_attributes(ended)
            otel_context.detach(token)
            span.end()

    __call__.__wrapped__ = original
    return __call__


def install_lean_asgi(tracer_provider=None) -> Callable[[], None] | None:
    """Patch FastAPI and Starlette application classes; returns the undo callable."""
    patched = []
    for module_name, class_name in (("fastapi", "FastAPI"), ("starlette.applications", "Starlette")):
        try:
            module = __import__(module_name, fromlist=[class_name])
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        original = cls.__dict__.get("__call__") if cls is not None else None
        if original is None or getattr(original, "__wrapped__", None) is not None:
            continue
        cls.__call__ = make_call(original, tracer_provider)
        patched.append((cls, original))
    if not patched:
        return None

    def undo() -> None:
        for cls, original in patched:
            cls.__call__ = original

    return undo
