"""Lean httpx client spans: the upstream instrumentor's span, without its per-call machinery.

Why: in the overhead benchmark (docs/BENCHMARKS.md) the request's one httpx call cost
about as much agent CPU as its three SQL statements together; disabling the httpx
instrumentor saved ~430 µs of the +1219 µs chokepoint added per request.  Only a part of
it was the span: the upstream transport wrapper (``_handle_request_wrapper``) also copies
and re-parses the URL twice, copies every request and response header into a lower-cased
dict before asking whether any is to be captured, copies the request's headers once more
to inject ``traceparent``, runs the semconv helpers for attributes it then throws away,
records two duration histograms on chokepoint's no-op meter, and chokepoint patched
``Client.send`` a second time for its timeout flag (:mod:`chokepoint.instrument.client_flags`).

Usage (the agent does this unless ``CHOKEPOINT_HTTPX=upstream``; the distro then skips the
upstream ``httpx`` instrumentor)::

    undo = install_lean_httpx(instruments, tracer_provider)

It replaces ``httpx.HTTPTransport.handle_request`` and
``httpx.AsyncHTTPTransport.handle_async_request`` (class level, where upstream wraps) with
one wrapper that makes the span upstream makes under ``OTEL_SEMCONV_STABILITY_OPT_IN=http``
(chokepoint's default):

- one ``CLIENT`` span named after the method (``GET``; an unknown method is ``HTTP``), the
  current span while the transport runs, in upstream's instrumentation scope
  (``opentelemetry.instrumentation.httpx``, same version and schema URL);
- attributes ``http.request.method`` (``http.request.method_original`` when sanitized),
  ``url.full`` (credentials and signed-URL query values redacted as upstream),
  ``server.address``/``network.peer.address``, ``server.port``/``network.peer.port`` (when
  the URL names a port), then ``http.response.status_code``, ``network.protocol.version``;
- a status >= 400 (or < 100) sets status ERROR and ``error.type`` = the code; an exception
  sets ``error.type`` = its class, is recorded on the span (status ERROR, ``"Type: msg"``)
  and re-raised unchanged;
- the global propagator's headers (``traceparent``, ``tracestate``, ``baggage``, any
  configured propagator) are injected into the outgoing request's headers;
- request/response headers named by ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST``
  / ``..._RESPONSE`` are captured (``..._SANITIZE_FIELDS`` honoured), with upstream's
  helpers, and only then is any header copied;
- ``OTEL_PYTHON_HTTPX_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS``,
  ``suppress_instrumentation`` and ``suppress_http_instrumentation`` are honoured;
- the timeout flag ``chokepoint.http.client.calls_without_timeout`` (read timeout ``None``)
  is counted here, once per call that reaches the network (each redirect hop is a call),
  instead of by a second patch on ``Client.send``.

A failure in chokepoint's own work is logged at debug and the call goes through untraced;
what the app's transport raises reaches the app unchanged.

When the lean path is not used (:func:`lean_httpx_wanted`): ``CHOKEPOINT_HTTPX=upstream``
(the upstream instrumentor, and the timeout flag on ``Client.send``), ``httpx`` in
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, or HTTP semconv other than ``http`` (``http/dup``
or the old names: the upstream instrumentor makes those).  Transports other than
``HTTPTransport``/``AsyncHTTPTransport`` (``MockTransport``, ``WSGITransport``, custom
ones not delegating to them) are not traced, as upstream.

Measured (user CPU, paired rounds in one process, busy shared 2-core box): one ``GET`` to
a local server through ``httpx.Client`` costs +90 µs with this path vs +276 µs with the
upstream instrumentor under the agent's own tracer provider and span processor (10 calls
per server span, 10 rounds of 400 calls; uninstrumented ~570 µs), and +110 vs +278 µs under
a bare SDK provider.  On the benchmark app (``bench/overhead/request_cpu.py --rounds 12..15
--requests 80 --variants "none,chokepoint,chokepoint+CHOKEPOINT_HTTPX=upstream"``) four runs
on the loaded box gave chokepoint 148, 118, 522 and -9 µs/request below
``CHOKEPOINT_HTTPX=upstream``: the host's noise there is larger than the difference.
What remains is mostly the span itself (start, end, the processor).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_log = logging.getLogger(__name__)

UPSTREAM_SCOPE = "opentelemetry.instrumentation.httpx"
_CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_"
_REDACTED_QUERY_PARAMS = (b"AWSAccessKeyId", b"Signature", b"sig", b"X-Goog-Signature")
_MAX_CACHED_METHODS = 32
_ERROR = Status(StatusCode.ERROR)

_installed = False


def http_semconv_mode(environ=None) -> str:
    """``"http"``, ``"http/dup"`` or ``"default"``, as upstream reads ``OTEL_SEMCONV_STABILITY_OPT_IN``."""
    env = os.environ if environ is None else environ
    opt_in = [part.strip() for part in (env.get("OTEL_SEMCONV_STABILITY_OPT_IN") or "").split(",")]
    if "http/dup" in opt_in:
        return "http/dup"
    return "http" if "http" in opt_in else "default"


def lean_client_wanted(library: str, switch: str, environ=None, *, warn: bool = True) -> bool:
    """Whether chokepoint's lean client path for ``library`` (``httpx``, ``requests``,
    ``urllib3``) replaces the upstream instrumentor: not with ``<switch>=upstream``, the
    library in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, HTTP semconv other than ``http``,
    or the library not installed.  Any other switch value than ``lean``/``upstream`` is
    warned about (``warn``) and means lean."""
    env = os.environ if environ is None else environ
    choice = (env.get(switch) or "lean").strip().lower()
    if choice == "upstream":
        return False
    if choice != "lean" and warn:
        _log.warning("chokepoint: %s=%r is neither 'lean' nor 'upstream'; using lean", switch, choice)
    disabled = {name.strip() for name in (env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") or "").split(",")}
    if library in disabled or "*" in disabled:
        return False
    if http_semconv_mode(env) != "http":
        return False
    try:
        __import__(library)
    except ImportError:
        return False
    return True


def lean_httpx_wanted(environ=None) -> bool:
    """Whether chokepoint's httpx path replaces the upstream instrumentor (module docstring;
    ``CHOKEPOINT_HTTPX`` is validated by the agent's config)."""
    return lean_client_wanted("httpx", "CHOKEPOINT_HTTPX", environ, warn=False)


class _RequestAttributes:
    """Span name and start attributes of a request, as upstream builds them (stable semconv)."""

    def __init__(self, environ=None):
        from opentelemetry.util.http import (
            get_custom_header_attributes,
            get_custom_headers,
            normalise_request_header_name,
            normalise_response_header_name,
            redact_url,
            sanitize_method,
        )

        self._sanitize_method = sanitize_method
        self._redact_url = redact_url
        self._header_attributes = get_custom_header_attributes
        self._request_name = normalise_request_header_name
        self._response_name = normalise_response_header_name
        self.request_headers = get_custom_headers(_CAPTURE + "REQUEST")
        self.response_headers = get_custom_headers(_CAPTURE + "RESPONSE")
        self.sensitive = get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS")
        self._methods: dict[str, tuple[str, dict]] = {}

    def _method(self, method: str) -> tuple[str, dict]:
        known = self._methods.get(method)
        if known is not None:
            return known
        original = method.strip()
        normalized = self._sanitize_method(original).strip()
        attributes = {}
        if original != normalized and original:
            attributes["http.request.method_original"] = original
        if normalized:
            attributes["http.request.method"] = normalized
        name = self._sanitize_method(method.strip())
        known = ("HTTP" if name == "_OTHER" else name, attributes)
        if len(self._methods) < _MAX_CACHED_METHODS:
            self._methods[method] = known
        return known

    def of(self, request) -> tuple[str, dict]:
        name, method_attributes = self._method(request.method)
        attributes = dict(method_attributes)
        url = request.url
        full = str(url)
        query = url.query
        if url.userinfo or (query and (b"%" in query or any(p in query for p in _REDACTED_QUERY_PARAMS))):
            full = self._redact_url(full)
        if full:
            attributes["url.full"] = full
        if self.request_headers:
            attributes.update(self.headers(request.headers, self.request_headers, self._request_name))
        host = url.host
        if host:
            attributes["server.address"] = host
            attributes["network.peer.address"] = host
        port = url.port
        if port:
            attributes["server.port"] = port
            attributes["network.peer.port"] = port
        return name, attributes

    def headers(self, headers, captured: list[str], name_of) -> dict:
        normalized: dict[str, list[str]] = {}
        for key in headers:
            normalized.setdefault(key.lower(), []).extend(headers.get_list(key, split_commas=True))
        return self._header_attributes(normalized, captured, self.sensitive, name_of)

    def response(self, span, response) -> None:
        """Response attributes and status, in upstream's order."""
        status = response.status_code
        attributes = {"http.response.status_code": status}
        error = status < 100 or status > 399
        if error:
            attributes["error.type"] = str(status)
        if self.response_headers:
            attributes.update(self.headers(response.headers, self.response_headers, self._response_name))
        version = response.http_version
        if version:
            version = version.replace("HTTP/", "")
            if version:
                attributes["network.protocol.version"] = version
        span.set_attributes(attributes)
        if error:
            span.set_status(_ERROR)


class _Injector:
    """``inject(headers, span, context)``: the global propagator's headers into ``headers``.

    With the default propagator (W3C trace context + baggage, exactly) ``traceparent`` /
    ``tracestate`` are written from the span's context directly, as
    ``TraceContextTextMapPropagator`` writes them, and baggage by its own propagator; any
    other propagator (``OTEL_PROPAGATORS``, ``set_global_textmap``) is called as is.
    """

    def __init__(self):
        self._textmap = None
        self._default = False
        self._baggage = W3CBaggagePropagator()

    @staticmethod
    def is_default(textmap) -> bool:
        if type(textmap) is not CompositePropagator:
            return False
        kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
        return kinds == [TraceContextTextMapPropagator, W3CBaggagePropagator]

    def __call__(self, headers, span, current) -> None:
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._default = self.is_default(textmap)
            self._textmap = textmap
        if not self._default:
            textmap.inject(headers, current)
            return
        span_context = span.get_span_context()
        if span_context == INVALID_SPAN_CONTEXT:
            return
        headers["traceparent"] = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
        if span_context.trace_state:
            headers["tracestate"] = span_context.trace_state.to_header()
        self._baggage.inject(headers, current)


def _suppressed() -> bool:
    current = otel_context.get_current()
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY) or current.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))


def _timeout_flag(instruments) -> Callable | None:
    """``request -> None`` counting a call whose read timeout is ``None``; never raises."""
    if instruments is None:
        return None
    from chokepoint.instrument.client_flags import _attrs

    counter = instruments.calls_without_timeout

    def flag(request) -> None:
        try:
            timeout = request.extensions.get("timeout")
            if isinstance(timeout, dict) and timeout.get("read") is None:
                counter.add(1, _attrs(request.url.host))
        except Exception:
            _log.debug("chokepoint: httpx flag check failed", exc_info=True)

    return flag


def _tracer(tracer_provider):
    try:
        from opentelemetry.instrumentation._semconv import _get_schema_url, _StabilityMode
        from opentelemetry.instrumentation.httpx.version import __version__

        return trace.get_tracer(UPSTREAM_SCOPE, __version__, tracer_provider, schema_url=_get_schema_url(_StabilityMode.HTTP))
    except ImportError:
        return trace.get_tracer(UPSTREAM_SCOPE, tracer_provider=tracer_provider)


def make_wrappers(sync_original: Callable, async_original: Callable, tracer_provider=None, instruments=None):
    """The lean ``handle_request`` / ``handle_async_request`` around the transports' originals."""
    import httpx
    from opentelemetry.util.http import get_excluded_urls

    tracer = _tracer(tracer_provider)
    build = _RequestAttributes()
    excluded = get_excluded_urls("HTTPX")
    flag = _timeout_flag(instruments)
    inject = _Injector()
    request_type = httpx.Request

    def start(request):
        """(span, token) with the span current and its context injected, or ``None``: call untraced."""
        if not isinstance(request, request_type) or _suppressed():
            return None
        try:
            if excluded and excluded.url_disabled(str(request.url)):
                return None
            if flag is not None:
                flag(request)
            name, attributes = build.of(request)
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            current = trace.set_span_in_context(span)
            token = otel_context.attach(current)
        except Exception:
            _log.debug("chokepoint: httpx span not started", exc_info=True)
            return None
        try:
            inject(request.headers, span, current)
        except Exception:
            _log.debug("chokepoint: httpx context not injected", exc_info=True)
        return span, token

    def finish(span, token, response, exc) -> None:
        try:
            otel_context.detach(token)
            if span.is_recording():
                if response is not None:
                    build.response(span, response)
                if exc is not None:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:
            _log.debug("chokepoint: httpx span not completed", exc_info=True)
        finally:
            span.end()

    def failed(exc) -> httpx.Response | None:
        response = getattr(exc, "response", None)
        return response if isinstance(response, httpx.Response) else None

    def handle_request(transport, request, *args, **kwargs):
        started = start(request)
        if started is None:
            return sync_original(transport, request, *args, **kwargs)
        span, token = started
        try:
            response = sync_original(transport, request, *args, **kwargs)
        except Exception as exc:
            finish(span, token, failed(exc), exc)
            raise
        except BaseException:
            finish(span, token, None, None)
            raise
        finish(span, token, response, None)
        return response

    async def handle_async_request(transport, request, *args, **kwargs):
        started = start(request)
        if started is None:
            return await async_original(transport, request, *args, **kwargs)
        span, token = started
        try:
            response = await async_original(transport, request, *args, **kwargs)
        except Exception as exc:
            finish(span, token, failed(exc), exc)
            raise
        except BaseException:  # cancellation: the span ends, no error (as upstream)
            finish(span, token, None, None)
            raise
        finish(span, token, response, None)
        return response

    handle_request.__wrapped__ = sync_original
    handle_async_request.__wrapped__ = async_original
    return handle_request, handle_async_request


def install_lean_httpx(instruments=None, tracer_provider=None, environ=None) -> Callable[[], None] | None:
    """Patch the httpx transports (module docstring); the undo callable, or ``None`` if not wanted.

    ``instruments`` / ``tracer_provider`` default to the running agent's
    (:func:`chokepoint.instrument.agent.current_agent`), else no flag and the global provider.
    """
    global _installed
    if _installed or not lean_httpx_wanted(environ):
        return None
    import httpx

    if instruments is None or tracer_provider is None:
        from chokepoint.instrument.agent import current_agent

        agent = current_agent()
        if agent is not None:
            instruments = instruments if instruments is not None else agent.instruments
            tracer_provider = tracer_provider if tracer_provider is not None else agent.tracer_provider
    sync_original = httpx.HTTPTransport.__dict__["handle_request"]
    async_original = httpx.AsyncHTTPTransport.__dict__["handle_async_request"]
    if hasattr(sync_original, "__wrapped__") or hasattr(async_original, "__wrapped__"):
        _log.debug("chokepoint: httpx transports already wrapped (upstream instrumentor?); lean path not installed")
        return None
    handle_request, handle_async_request = make_wrappers(sync_original, async_original, tracer_provider, instruments)
    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request
    _installed = True

    def undo() -> None:
        global _installed
        if httpx.HTTPTransport.__dict__.get("handle_request") is handle_request:
            httpx.HTTPTransport.handle_request = sync_original
        if httpx.AsyncHTTPTransport.__dict__.get("handle_async_request") is handle_async_request:
            httpx.AsyncHTTPTransport.handle_async_request = async_original
        _installed = False

    return undo
