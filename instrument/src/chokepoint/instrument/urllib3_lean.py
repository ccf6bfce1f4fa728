"""Lean urllib3 client spans: the upstream instrumentor's span, without its per-call machinery.

Why: the upstream urllib3 wrapper of ``HTTPConnectionPool.urlopen`` binds every call to
``urlopen``'s signature (``inspect.Signature.bind`` + ``apply_defaults``), fills metric
labels for six histograms recorded on chokepoint's no-op meter, and chokepoint's
``request_hook`` (:func:`chokepoint.instrument.distro.urllib3_server_address`) then sets
``server.address`` / ``server.port`` one by one on the started span.

Usage (the distro does this in place of the upstream ``urllib3`` instrumentor unless
``CHOKEPOINT_URLLIB3=upstream``)::

    undo = install_lean_urllib3(tracer_provider=None)   # the global provider, as upstream

It replaces ``urllib3.connectionpool.HTTPConnectionPool.urlopen`` with one wrapper making
the span upstream (with chokepoint's hook) makes under ``OTEL_SEMCONV_STABILITY_OPT_IN=http``:

- one ``CLIENT`` span per outermost ``urlopen`` (retries and redirects urllib3 follows
  inside it are not spans of their own, as upstream), named after the method (``HTTP``
  for an unknown one), in upstream's scope (``opentelemetry.instrumentation.urllib3``);
- ``http.request.method`` (+ ``http.request.method_original``), ``url.full`` (as called,
  or the pool's ``scheme://host[:port]`` + path; not redacted, as upstream), captured
  request headers, ``server.address`` / ``server.port`` (the pool's), then
  ``http.response.status_code``, ``error.type`` (>= 400), captured response headers;
- an exception is recorded (status ERROR, ``"Type: msg"``) and re-raised unchanged;
- the global propagator's headers go into a copy of the call's headers, which is what is
  sent (as upstream: a call without headers sends only those, not the pool's defaults);
- ``OTEL_PYTHON_URLLIB3_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS``, the suppression
  keys and the header-capture variables are honoured; urllib3 is suppressed inside.

chokepoint's own urllib3 flags (timeouts, retries: :mod:`chokepoint.instrument.client_flags`)
stay a separate patch, on every ``urlopen`` including the inner ones.  A failure in
chokepoint's own work leaves the call untraced, never raises into the app.  Not used
(:func:`lean_urllib3_wanted`) with ``CHOKEPOINT_URLLIB3=upstream``, ``urllib3`` in
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` or HTTP semconv other than ``http``.

Measured (user CPU, 10 paired rounds of 400 ``PoolManager.request`` calls to a local
server, SDK tracer provider without processor, busy shared box): +115 µs per call with
this path vs +250 µs with the upstream instrumentor and chokepoint's hook (uninstrumented
~320 µs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.instrument.httpx_lean import _Injector, _suppressed, lean_client_wanted

_log = logging.getLogger(__name__)

UPSTREAM_SCOPE = "opentelemetry.instrumentation.urllib3"
_CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_"
_MAX_CACHED = 64

_installed = False


def lean_urllib3_wanted(environ=None) -> bool:
    """Whether chokepoint's urllib3 path replaces the upstream instrumentor."""
    return lean_client_wanted("urllib3", "CHOKEPOINT_URLLIB3", environ)


def _tracer(tracer_provider):
    try:
        from opentelemetry.instrumentation._semconv import _get_schema_url, _StabilityMode
        from opentelemetry.instrumentation.urllib3.version import __version__

        return trace.get_tracer(UPSTREAM_SCOPE, __version__, tracer_provider, schema_url=_get_schema_url(_StabilityMode.HTTP))
    except ImportError:
        return trace.get_tracer(UPSTREAM_SCOPE, tracer_provider=tracer_provider)


def make_urlopen(original: Callable, tracer_provider=None) -> Callable:
    """The lean ``HTTPConnectionPool.urlopen`` around ``original``."""
    import http.client

    from opentelemetry.instrumentation.utils import http_status_to_status_code
    from opentelemetry.util.http import (
        get_custom_header_attributes,
        get_custom_headers,
        get_excluded_urls,
        normalise_request_header_name,
        normalise_response_header_name,
        sanitize_method,
    )
    from opentelemetry.util.http.httplib import set_ip_on_next_http_connection

    tracer = _tracer(tracer_provider)
    excluded = get_excluded_urls("URLLIB3")
    captured_request = get_custom_headers(_CAPTURE + "REQUEST")
    captured_response = get_custom_headers(_CAPTURE + "RESPONSE")
    sensitive = get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS")
    inject = _Injector()
    methods: dict[str, tuple[str, dict]] = {}

    def method_of(method: str) -> tuple[str, dict]:
        known = methods.get(method)
        if known is None:
            sanitized = sanitize_method(method)
            attributes = {}
            original_, normalized = method.strip(), sanitized.strip()
            if original_ != normalized and original_:
                attributes["http.request.method_original"] = original_
            if normalized:
                attributes["http.request.method"] = normalized
            known = ("HTTP" if sanitized == "_OTHER" else sanitized, attributes)
            if len(methods) < _MAX_CACHED:
                methods[method] = known
        return known

    def url_of(pool, url: str) -> str:
        if not url.startswith("/"):
            return url
        scheme, port = pool.scheme, pool.port
        full = scheme + "://" + pool.host
        if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
            full += ":" + str(port)
        return full + url

    def start(pool, args, kwargs):
        """(span, token, args, kwargs) to call with, or ``None``: call untraced."""
        if _suppressed():
            return None
        try:
            method = args[0] if args else kwargs["method"]
            url = args[1] if len(args) > 1 else kwargs["url"]
            headers = args[3] if len(args) > 3 else kwargs.get("headers")
            method = method.upper()
            full = url_of(pool, url)
            if excluded and excluded.url_disabled(full):
                return None
            headers = headers.copy() if headers is not None else {}
            name, method_attributes = method_of(method)
            attributes = dict(method_attributes)
            if full:
                attributes["url.full"] = full
            if captured_request:
                attributes.update(get_custom_header_attributes(headers, captured_request, sensitive, normalise_request_header_name))
            host, port = getattr(pool, "host", None), getattr(pool, "port", None)
            if host:
                attributes["server.address"] = str(host).strip("[]")
            if isinstance(port, int):
                attributes["server.port"] = port
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            current = trace.set_span_in_context(span)
            token = otel_context.attach(otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, current))
        except Exception:
            _log.debug("chokepoint: urllib3 span not started", exc_info=True)
            return None
        try:
            inject(headers, span, current)
        except Exception:
            _log.debug("chokepoint: urllib3 context not injected", exc_info=True)
        if len(args) > 3:
            args = (*args[:3], headers, *args[4:])
        else:
            kwargs = {**kwargs, "headers": headers}
        return span, token, args, kwargs

    def respond(span, response) -> None:
        text = str(response.status)
        try:
            status = int(response.status)
        except ValueError:
            status = -1
        attributes: dict = {}
        if status < 0:
            attributes["error.type"] = text
            span_status = Status(StatusCode.ERROR, "Non-integer HTTP status: " + text)
        else:
            attributes["http.response.status_code"] = status
            span_status = None
            if http_status_to_status_code(status, server_span=False) is StatusCode.ERROR:
                attributes["error.type"] = text
                span_status = Status(StatusCode.ERROR)
        if captured_response:
            attributes.update(get_custom_header_attributes(response.headers, captured_response, sensitive, normalise_response_header_name))
        span.set_attributes(attributes)
        if span_status is not None:
            span.set_status(span_status)

    def finish(span, token, response, exc) -> None:
        try:
            otel_context.detach(token)
            if span.is_recording():
                if response is not None:
                    respond(span, response)
                if exc is not None:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:
            _log.debug("chokepoint: urllib3 span not completed", exc_info=True)
        finally:
            span.end()

    def urlopen(pool, *args, **kwargs):
        started = start(pool, args, kwargs)
        if started is None:
            return original(pool, *args, **kwargs)
        span, token, args, kwargs = started
        try:
            if hasattr(http.client.HTTPConnection.connect, "__wrapped__"):  # http.client instrumented: peer IP
                with set_ip_on_next_http_connection(span):
                    response = original(pool, *args, **kwargs)
            else:
                response = original(pool, *args, **kwargs)
        except Exception as exc:
            finish(span, token, None, exc)
            raise
        except BaseException:
            finish(span, token, None, None)
            raise
        finish(span, token, response, None)
        return response

    urlopen.__wrapped__ = original
    return urlopen


def install_lean_urllib3(tracer_provider=None, environ=None) -> Callable[[], None] | None:
    """Patch ``HTTPConnectionPool.urlopen`` (module docstring); the undo callable, or ``None``."""
    global _installed
    if _installed or not lean_urllib3_wanted(environ):
        return None
    from urllib3.connectionpool import HTTPConnectionPool

    original = HTTPConnectionPool.__dict__["urlopen"]
    if hasattr(original, "__wrapped__"):
        _log.debug("chokepoint: urllib3 urlopen already wrapped (upstream instrumentor?); lean path not installed")
        return None
    urlopen = make_urlopen(original, tracer_provider)
    HTTPConnectionPool.urlopen = urlopen
    _installed = True

    def undo() -> None:
        global _installed
        if HTTPConnectionPool.__dict__.get("urlopen") is urlopen:
            HTTPConnectionPool.urlopen = original
        _installed = False

    return undo
