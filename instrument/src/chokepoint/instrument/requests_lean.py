"""Lean ``requests`` client spans: the upstream instrumentor's span, without its per-call machinery.

Why: as for httpx (:mod:`chokepoint.instrument.httpx_lean`), the upstream ``requests``
wrapper of ``Session.send`` does more per call than the span: the URL is parsed three
times (credentials, query redaction, host/port), the semconv helpers fill metric labels for
two duration histograms recorded on chokepoint's no-op meter, and three contexts are
attached (the span, the socket-address state, the urllib3 suppression).

Usage (the distro does this in place of the upstream ``requests`` instrumentor unless
``CHOKEPOINT_REQUESTS=upstream``)::

    undo = install_lean_requests(tracer_provider=None)   # the global provider, as upstream

It replaces ``requests.Session.send`` with one wrapper making the span upstream makes under
``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (chokepoint's default), with upstream's helpers for
every value:

- one ``CLIENT`` span per ``send`` (each redirect hop is one), named after the method
  (``HTTP`` for an unknown one), in upstream's scope (``opentelemetry.instrumentation.requests``);
- ``http.request.method`` (+ ``http.request.method_original``), ``url.full`` (credentials
  and signed-URL query values redacted), ``user_agent.original`` /
  ``user_agent.synthetic.type``, captured request headers, ``server.address`` /
  ``network.peer.address``, ``server.port`` / ``network.peer.port`` (when the URL names a
  port), then ``http.response.status_code``, ``error.type`` (>= 400),
  ``network.protocol.version``, captured response headers;
- an exception sets ``error.type`` = its class, is recorded (status ERROR) and re-raised;
- the global propagator's headers are injected into the request's headers; the urllib3
  instrumentation is suppressed inside (one span per call, not two);
- ``OTEL_PYTHON_REQUESTS_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS``,
  ``suppress_instrumentation`` / ``suppress_http_instrumentation`` and the
  ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*`` variables are honoured; when
  ``http.client`` is instrumented the socket's peer address is set as upstream does.

A failure in chokepoint's own work leaves the call untraced, never raises into the app.
Not used (:func:`lean_requests_wanted`) with ``CHOKEPOINT_REQUESTS=upstream``, ``requests``
in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` or HTTP semconv other than ``http``.

Measured (user CPU, 10 paired rounds of 300 ``Session.get`` calls to a local server, SDK
tracer provider without processor, the urllib3 instrumentor installed too, busy shared
box): +204 µs per call with this path vs +339 µs with the upstream requests instrumentor
(uninstrumented ~1040 µs).
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

UPSTREAM_SCOPE = "opentelemetry.instrumentation.requests"
_CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_"
_REDACTED_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature")
_MAX_CACHED = 64
_ERROR = Status(StatusCode.ERROR)

_installed = False


def lean_requests_wanted(environ=None) -> bool:
    """Whether chokepoint's ``requests`` path replaces the upstream instrumentor."""
    return lean_client_wanted("requests", "CHOKEPOINT_REQUESTS", environ)


def _may_redact(url: str) -> bool:
    """False only when upstream's ``redact_url`` certainly returns ``url`` unchanged."""
    if "@" in url:
        return True
    query = url.partition("?")[2]
    return bool(query) and ("%" in query or any(p in query for p in _REDACTED_QUERY_PARAMS))


class _Attributes:
    """Upstream's span name and attributes for a ``PreparedRequest`` / ``Response``."""

    def __init__(self):
        from opentelemetry.util.http import (
            detect_synthetic_user_agent,
            get_custom_header_attributes,
            get_custom_headers,
            normalise_request_header_name,
            normalise_response_header_name,
            normalize_user_agent,
            redact_url,
            sanitize_method,
        )

        self._sanitize = sanitize_method
        self._redact = redact_url
        self._normalize_ua = normalize_user_agent
        self._synthetic = detect_synthetic_user_agent
        self._header_attributes = get_custom_header_attributes
        self._request_name = normalise_request_header_name
        self._response_name = normalise_response_header_name
        self.request_headers = get_custom_headers(_CAPTURE + "REQUEST")
        self.response_headers = get_custom_headers(_CAPTURE + "RESPONSE")
        self.sensitive = get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS")
        self._methods: dict[str, tuple[str, dict]] = {}
        self._agents: dict = {}

    def _method(self, method: str) -> tuple[str, dict]:
        known = self._methods.get(method)
        if known is not None:
            return known
        sanitized = self._sanitize(method.strip())
        attributes = {}
        original, normalized = method.strip(), sanitized.strip()
        if original != normalized and original:
            attributes["http.request.method_original"] = original
        if normalized:
            attributes["http.request.method"] = normalized
        known = ("HTTP" if sanitized == "_OTHER" else sanitized, attributes)
        if len(self._methods) < _MAX_CACHED:
            self._methods[method] = known
        return known

    def _agent(self, value) -> dict:
        cacheable = value is None or isinstance(value, str)
        if cacheable:
            known = self._agents.get(value)
            if known is not None:
                return known
        attributes = {}
        agent = self._normalize_ua(value)
        synthetic = self._synthetic(agent)
        if synthetic:
            attributes["user_agent.synthetic.type"] = synthetic
        if agent:
            attributes["user_agent.original"] = agent
        if cacheable and len(self._agents) < _MAX_CACHED:
            self._agents[value] = attributes
        return attributes

    def of(self, request, headers) -> tuple[str, dict]:
        from urllib.parse import urlparse

        name, method_attributes = self._method(request.method)
        attributes = dict(method_attributes)
        url = request.url
        if _may_redact(url):
            url = self._redact(url)
        if url:
            attributes["url.full"] = url
        attributes.update(self._agent(headers.get("User-Agent")))
        if self.request_headers:
            attributes.update(self._header_attributes(headers, self.request_headers, self.sensitive, self._request_name))
        try:
            parsed = urlparse(url)
            host = parsed.hostname
            if host:
                attributes["server.address"] = host
                attributes["network.peer.address"] = host
            port = parsed.port
            if port:
                attributes["server.port"] = port
                attributes["network.peer.port"] = port
        except ValueError:
            pass
        return name, attributes

    def response(self, span, response) -> None:
        from opentelemetry.instrumentation.utils import http_status_to_status_code

        text = str(response.status_code)
        try:
            status = int(response.status_code)
        except ValueError:
            status = -1
        attributes: dict = {}
        error = True
        if status < 0:
            attributes["error.type"] = text
            status_set = Status(StatusCode.ERROR, "Non-integer HTTP status: " + text)
        else:
            attributes["http.response.status_code"] = status
            error = http_status_to_status_code(status, server_span=False) is StatusCode.ERROR
            if error:
                attributes["error.type"] = text
            status_set = _ERROR
        raw = response.raw
        version = getattr(raw, "version", None) if raw is not None else None
        if version:
            attributes["network.protocol.version"] = "1.1" if version == 11 else "1.0"
        if self.response_headers:
            attributes.update(self._header_attributes(response.headers, self.response_headers, self.sensitive, self._response_name))
        span.set_attributes(attributes)
        if error:
            span.set_status(status_set)


def _tracer(tracer_provider):
    try:
        from opentelemetry.instrumentation._semconv import _get_schema_url, _StabilityMode
        from opentelemetry.instrumentation.requests.version import __version__

        return trace.get_tracer(UPSTREAM_SCOPE, __version__, tracer_provider, schema_url=_get_schema_url(_StabilityMode.HTTP))
    except ImportError:
        return trace.get_tracer(UPSTREAM_SCOPE, tracer_provider=tracer_provider)


def make_send(original: Callable, tracer_provider=None) -> Callable:
    """The lean ``Session.send`` around ``original``."""
    import http.client

    from opentelemetry.util.http import get_excluded_urls
    from opentelemetry.util.http.httplib import set_ip_on_next_http_connection
    from requests.models import Response
    from requests.structures import CaseInsensitiveDict

    tracer = _tracer(tracer_provider)
    build = _Attributes()
    excluded = get_excluded_urls("REQUESTS")
    inject = _Injector()

    def start(request):
        """(span, token) with the span current, urllib3 suppressed and the context injected; or ``None``."""
        try:
            if excluded and excluded.url_disabled(request.url):
                return None
            if request.headers is None:
                request.headers = CaseInsensitiveDict()
            if _suppressed():
                return None
            headers = request.headers
            name, attributes = build.of(request, headers)
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            current = trace.set_span_in_context(span)
            token = otel_context.attach(otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, current))
        except Exception:
            _log.debug("chokepoint: requests span not started", exc_info=True)
            return None
        try:
            inject(headers, span, current)
        except Exception:
            _log.debug("chokepoint: requests context not injected", exc_info=True)
        return span, token

    def finish(span, token, response, exc) -> None:
        try:
            otel_context.detach(token)
            if span.is_recording():
                if isinstance(response, Response):
                    build.response(span, response)
                if exc is not None:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:
            _log.debug("chokepoint: requests span not completed", exc_info=True)
        finally:
            span.end()

    def send(self, request, **kwargs):
        started = start(request)
        if started is None:
            return original(self, request, **kwargs)
        span, token = started
        try:
            if hasattr(http.client.HTTPConnection.connect, "__wrapped__"):  # http.client instrumented: peer IP
                with set_ip_on_next_http_connection(span):
                    response = original(self, request, **kwargs)
            else:
                response = original(self, request, **kwargs)
        except Exception as exc:
            finish(span, token, getattr(exc, "response", None), exc)
            raise
        except BaseException:
            finish(span, token, None, None)
            raise
        finish(span, token, response, None)
        return response

    send.__wrapped__ = original
    return send


def install_lean_requests(tracer_provider=None, environ=None) -> Callable[[], None] | None:
    """Patch ``requests.Session.send`` (module docstring); the undo callable, or ``None``."""
    global _installed
    if _installed or not lean_requests_wanted(environ):
        return None
    from requests.sessions import Session

    original = Session.__dict__["send"]
    if hasattr(original, "__wrapped__") or getattr(original, "opentelemetry_instrumentation_requests_applied", False):
        _log.debug("chokepoint: requests.Session.send already wrapped (upstream instrumentor?); lean path not installed")
        return None
    send = make_send(original, tracer_provider)
    Session.send = send
    _installed = True

    def undo() -> None:
        global _installed
        if Session.__dict__.get("send") is send:
            Session.send = original
        _installed = False

    return undo
