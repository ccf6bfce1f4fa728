"""What chokepoint's lean HTTP client paths share: the upstream client span, from one wrapper.

The agent replaces the upstream httpx, requests and urllib3 instrumentors with lean paths
(:mod:`chokepoint.instrument.httpx_lean`, :mod:`chokepoint.instrument.requests_lean`,
:mod:`chokepoint.instrument.urllib3_lean`).  Why: the upstream wrappers do more per call
than the span (URLs re-parsed, headers copied before asking whether any is captured,
semconv helpers filling metric labels for histograms recorded on chokepoint's no-op meter;
each library module says what its upstream wrapper costs and what the lean one saves).
Each lean path makes the span its upstream instrumentor makes under
``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (chokepoint's default), with upstream's helpers for
every value; this module is what the three have in common, each library module keeps what
is its own (where the request's URL, method and headers are, what else it records).

Every lean client span:

- one ``CLIENT`` span per wrapped call, named after the method (``GET``; an unknown method
  is ``HTTP``), in the upstream instrumentation's scope (``opentelemetry.instrumentation.<library>``,
  same version and schema URL), current while the call runs;
- ``http.request.method`` (``http.request.method_original`` when sanitized), ``url.full``,
  ``server.address`` / ``server.port`` and what the library module adds, then
  ``http.response.status_code``; a status >= 400 (or < 100) sets status ERROR and
  ``error.type`` = the code, a non-integer one ``error.type`` = the value and status
  ``"Non-integer HTTP status: <value>"``; ``network.protocol.version`` where the library
  tells it;
- an exception is recorded on the span (status ERROR, ``"Type: msg"``; ``error.type`` =
  its class where the upstream instrumentor sets it: httpx, requests) and re-raised
  unchanged; a response the exception carries (``exc.response``) still gives the span its
  status; a ``BaseException`` (a cancellation) only ends the span, as upstream;
- the global propagator's headers are injected into the outgoing request's headers
  (:class:`Injector`); requests and urllib3 suppress HTTP instrumentation inside (one span
  per call, not two) and, when ``http.client`` is instrumented, put the socket's peer
  address on the span as upstream does;
- request/response headers named by ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST``
  / ``..._RESPONSE`` are captured (``..._SANITIZE_FIELDS`` honoured) with upstream's
  helpers (:class:`CapturedHeaders`);
- ``OTEL_PYTHON_<LIBRARY>_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS``,
  ``suppress_instrumentation`` and ``suppress_http_instrumentation`` are honoured.

A failure in chokepoint's own work is logged at debug and the call goes through untraced
(or, once started, its span ends); what the library raises reaches the app unchanged.

When a lean path is used (:func:`lean_client_wanted`): unless its switch says ``upstream``
(``CHOKEPOINT_HTTPX`` / ``CHOKEPOINT_REQUESTS`` / ``CHOKEPOINT_URLLIB3``, read through
:class:`~chokepoint.instrument.config.AgentConfig`: the running agent's, else one read from
the environment; a bad value is one of the config's problems, logged by the agent at
start-up, and means ``lean``), the library is in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``,
HTTP semconv is other than ``http`` (``http/dup`` or the old names: the upstream
instrumentor makes those), or the library is not installed.  The upstream instrumentor
then makes the spans (the distro skips it whenever the lean path is used).

Building a library's path::

    spans = ClientSpans("urllib3", tracer_provider, status_attribute="status", ...)   # see ClientSpans
    urlopen = spans.wrap(original, describe)   # describe(args, kwargs) -> what to trace, or None
    undo = install_patches("urllib3", environ, targets, make)   # class-level patch, once

:func:`install_patches` replaces methods on the library's classes (where upstream wraps),
not over a method that is wrapped already (the upstream instrumentor, or the lean path
installed once); its undo puts back each original still replaced by its wrapper.

Cost: the same work per call as three separate per-library wrappers (docs/BENCHMARKS.md,
"HTTP client integrations").
"""

from __future__ import annotations

import http.client
import importlib
import logging
import os
from collections.abc import Callable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanKind, Status, StatusCode

from chokepoint.instrument.compat import SUPPRESS_HTTP_INSTRUMENTATION_KEY, SUPPRESS_INSTRUMENTATION_KEY, http_schema_url
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.config import http_semconv_mode as config_http_semconv_mode
from chokepoint.instrument.propagation import is_default_w3c

_log = logging.getLogger(__name__)

LIBRARIES = ("httpx", "requests", "urllib3")  # AgentConfig has a switch of each name
UPSTREAM_SCOPE_PREFIX = "opentelemetry.instrumentation."
_CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_"
_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
_REDACTED_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature")
_MAX_CACHED = 64
_ERROR = Status(StatusCode.ERROR)


def http_semconv_mode(environ: Mapping[str, str] | None = None) -> str:
    """``"http"``, ``"http/dup"`` or ``"default"``, as upstream reads ``OTEL_SEMCONV_STABILITY_OPT_IN``."""
    return config_http_semconv_mode(os.environ if environ is None else environ)


def lean_client_wanted(library: str, environ: Mapping[str, str] | None = None, config: AgentConfig | None = None) -> bool:
    """Whether the plan (:mod:`chokepoint.instrument.plan`) gives ``library`` (one of
    :data:`LIBRARIES`) chokepoint's own client spans, for ``config`` (else one read from
    ``environ``, else from the process environment)."""
    if library not in LIBRARIES:
        raise ValueError(f"no lean client path for {library!r}; one of {', '.join(LIBRARIES)}")
    from chokepoint.instrument.plan import make_plan

    return make_plan(config if config is not None else AgentConfig.from_env(environ)).own(library)


def install_patches(
    library: str,
    environ: Mapping[str, str] | None,
    targets: Callable[[], list[tuple[type, str]]],
    make: Callable[..., tuple[Callable, ...]],
    config: AgentConfig | None = None,
) -> Callable[[], None] | None:
    """Replace ``targets()`` (``(class, method name)`` pairs, in the library's modules) with
    ``make(*originals)``'s wrappers, in the same order, each with its original as
    ``__wrapped__``; the undo callable, or ``None`` if the lean path is not wanted
    (:func:`lean_client_wanted`) or a target is wrapped already."""
    if not lean_client_wanted(library, environ, config):
        return None
    pairs = targets()
    originals = [owner.__dict__[name] for owner, name in pairs]
    applied = f"opentelemetry_instrumentation_{library}_applied"  # upstream's own mark (requests)
    if any(hasattr(original, "__wrapped__") or getattr(original, applied, False) for original in originals):
        _log.debug("chokepoint: %s already wrapped (upstream instrumentor, or installed once); lean path not installed", library)
        return None
    wrappers = make(*originals)
    for (owner, name), original, wrapper in zip(pairs, originals, wrappers, strict=True):
        wrapper.__wrapped__ = original  # what says "wrapped already" to a second install, and to upstream's
        setattr(owner, name, wrapper)

    def undo() -> None:
        for (owner, name), original, wrapper in zip(pairs, originals, wrappers, strict=True):
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)

    return undo


def upstream_tracer(library: str, tracer_provider=None):
    """The tracer of the upstream instrumentor's scope (name, version, HTTP schema URL)."""
    scope = UPSTREAM_SCOPE_PREFIX + library
    try:
        version = importlib.import_module(scope + ".version").__version__
    except ImportError:
        return trace.get_tracer(scope, tracer_provider=tracer_provider)
    return trace.get_tracer(scope, version, tracer_provider, schema_url=http_schema_url())


def suppressed() -> bool:
    """Whether the current context suppresses (HTTP) instrumentation."""
    current = otel_context.get_current()
    return bool(current.get(SUPPRESS_INSTRUMENTATION_KEY) or current.get(SUPPRESS_HTTP_INSTRUMENTATION_KEY))


def redacted_url(url: str) -> str:
    """``url`` with credentials and signed-URL query values redacted by upstream's
    ``redact_url``, called only when it might change something."""
    if "@" not in url:
        query = url.partition("?")[2]
        if not query or ("%" not in query and not any(p in query for p in _REDACTED_QUERY_PARAMS)):
            return url
    from opentelemetry.util.http import redact_url

    return redact_url(url)


def add_server(attributes: dict, host, port) -> None:
    """``server.address`` / ``network.peer.address`` and ``server.port`` / ``network.peer.port``
    (when the URL names a port), as the httpx and requests instrumentors set them."""
    if host:
        attributes["server.address"] = host
        attributes["network.peer.address"] = host
    if port:
        attributes["server.port"] = port
        attributes["network.peer.port"] = port


class MethodNames:
    """``names(method) -> (span name, method attributes)`` as upstream sets them (stable
    semconv), cached for up to 64 distinct methods.  ``strip``: sanitize the stripped method
    (httpx, requests) or the method as called (urllib3), as each upstream does."""

    def __init__(self, strip: bool = True):
        from opentelemetry.util.http import sanitize_method

        self._sanitize = sanitize_method
        self._strip = strip
        self._known: dict[str, tuple[str, dict]] = {}

    def __call__(self, method: str) -> tuple[str, dict]:
        known = self._known.get(method)
        if known is not None:
            return known
        original = method.strip()
        sanitized = self._sanitize(original if self._strip else method)
        normalized = sanitized.strip()
        attributes = {}
        if original != normalized and original:
            attributes["http.request.method_original"] = original
        if normalized:
            attributes["http.request.method"] = normalized
        known = ("HTTP" if sanitized == "_OTHER" else sanitized, attributes)
        if len(self._known) < _MAX_CACHED:
            self._known[method] = known
        return known


class CapturedHeaders:
    """The headers ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`` / ``_RESPONSE``
    name (values of ``..._SANITIZE_FIELDS`` redacted), read once, as span attributes by
    upstream's helper.  ``request`` / ``response``: the configured names (empty: nothing to
    capture, and no header is looked at).  ``normalize``: the library's headers ->
    ``{lower-case name: [values]}`` where upstream hands the helper that (httpx)."""

    def __init__(self, normalize: Callable | None = None):
        from opentelemetry.util.http import (
            get_custom_header_attributes,
            get_custom_headers,
            normalise_request_header_name,
            normalise_response_header_name,
        )

        self.request = get_custom_headers(_CAPTURE + "REQUEST")
        self.response = get_custom_headers(_CAPTURE + "RESPONSE")
        self._sensitive = get_custom_headers(_SANITIZE)
        self._attributes = get_custom_header_attributes
        self._request_name = normalise_request_header_name
        self._response_name = normalise_response_header_name
        self._normalize = normalize

    def of_request(self, headers) -> dict:
        return self._of(headers, self.request, self._request_name)

    def of_response(self, headers) -> dict:
        return self._of(headers, self.response, self._response_name)

    def _of(self, headers, captured: list[str], name_of) -> dict:
        if self._normalize is not None:
            headers = self._normalize(headers)
        return self._attributes(headers, captured, self._sensitive, name_of)


class Injector:
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

    def __call__(self, headers, span, current) -> None:
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._default = is_default_w3c(textmap)
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


class ClientSpans:
    """One library's lean client spans: the tracer, method names, captured headers and
    excluded URLs it reads once, and the wrappers that start and finish each span.

    - ``library``: upstream's instrumentation name (scope, ``OTEL_PYTHON_<LIBRARY>_EXCLUDED_URLS``);
    - ``status_attribute``: the response's status code attribute (``status_code``; urllib3 ``status``);
    - ``protocol_version(response) -> str | None``: ``network.protocol.version`` (httpx,
      requests; urllib3's upstream sets none);
    - ``response_type``: an exception's ``response`` of this type is the call's response
      (httpx, requests; ``()``: never);
    - ``normalize_headers``: see :class:`CapturedHeaders`; ``strip_method``: see :class:`MethodNames`;
    - ``suppress_inside``: HTTP instrumentation suppressed while the call runs (requests, urllib3);
    - ``exception_error_type``: an exception sets ``error.type`` to its class (not urllib3);
    - ``peer_ip``: with ``http.client`` instrumented, its peer address on the span (requests, urllib3).

    A wrapped call's ``describe(args, kwargs)`` (the library's) returns ``None`` (not traced:
    not a request it traces, or an excluded URL) or ``(span name, start attributes, headers
    to inject into, args, kwargs)``, the arguments to call the original with.
    """

    def __init__(
        self,
        library: str,
        tracer_provider,
        *,
        status_attribute: str = "status_code",
        protocol_version: Callable | None = None,
        response_type: type | tuple = (),
        normalize_headers: Callable | None = None,
        strip_method: bool = True,
        suppress_inside: bool = True,
        exception_error_type: bool = True,
        peer_ip: bool = True,
    ):
        from opentelemetry.util.http import get_excluded_urls

        self.library = library
        self.tracer = upstream_tracer(library, tracer_provider)
        self.excluded = get_excluded_urls(library.upper())
        self.methods = MethodNames(strip_method)
        self.headers = CapturedHeaders(normalize_headers)
        self._inject = Injector()
        # how the library's responses look, and what its upstream wrapper does around a call
        self._status_attribute, self._protocol_version, self._response_type = status_attribute, protocol_version, response_type
        self._suppress_inside, self._exception_error_type, self._peer_ip = suppress_inside, exception_error_type, peer_ip

    def start(self, describe: Callable, args: tuple, kwargs: dict) -> tuple | None:
        """``(span, token, args, kwargs)``: the span started and current, its context injected,
        the arguments to call the original with; or ``None``: the call runs untraced."""
        if suppressed():
            return None
        try:
            described = describe(args, kwargs)
            if described is None:
                return None
            name, attributes, headers, args, kwargs = described
            span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            current = trace.set_span_in_context(span)
            inside = otel_context.set_value(SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, current) if self._suppress_inside else current
            token = otel_context.attach(inside)
        except Exception:
            _log.debug("chokepoint: %s span not started", self.library, exc_info=True)
            return None
        try:
            self._inject(headers, span, current)
        except Exception:
            _log.debug("chokepoint: %s context not injected", self.library, exc_info=True)
        return span, token, args, kwargs

    def finish(self, span, token, response, exc: BaseException | None = None):
        """Detach the span's context, set the response's attributes and an exception's, end
        it; ``response``, for the wrapper to return."""
        try:
            otel_context.detach(token)
            if span.is_recording():
                error = None if exc is None or not isinstance(exc, Exception) else exc  # a cancellation only ends the span
                answer = response
                if error is not None:  # a response the exception carries
                    answer = getattr(error, "response", None)
                    if not isinstance(answer, self._response_type):
                        answer = None
                if answer is not None:
                    self.respond(span, answer)
                if error is not None:
                    if self._exception_error_type:
                        span.set_attribute("error.type", type(error).__qualname__)
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:
            _log.debug("chokepoint: %s span not completed", self.library, exc_info=True)
        finally:
            span.end()
        return response

    def respond(self, span, response) -> None:
        """The response's attributes and status on the span, as upstream sets them: a status
        >= 400 or < 100 is an error (``error.type`` = the code), a non-integer one too."""
        code = getattr(response, self._status_attribute)
        try:
            number = code if type(code) is int else int(code)
        except (TypeError, ValueError):
            number = -1
        if number < 0:
            attributes: dict = {"error.type": str(code)}
            status = Status(StatusCode.ERROR, f"Non-integer HTTP status: {code}")
        elif 100 <= number <= 399:
            attributes, status = {"http.response.status_code": number}, None
        else:
            attributes, status = {"http.response.status_code": number, "error.type": str(code)}, _ERROR
        if self._protocol_version is not None:
            version = self._protocol_version(response)
            if version:
                attributes["network.protocol.version"] = version
        if self.headers.response:
            attributes.update(self.headers.of_response(response.headers))
        span.set_attributes(attributes)
        if status is not None:
            span.set_status(status)

    def wrap(self, original: Callable, describe: Callable) -> Callable:
        """The lean wrapper of the sync method ``original``."""
        start, finish, peer_ip = self.start, self.finish, self._peer_ip
        from opentelemetry.util.http.httplib import set_ip_on_next_http_connection

        def wrapper(*args, **kwargs):
            started = start(describe, args, kwargs)
            if started is None:
                return original(*args, **kwargs)
            span, token, args, kwargs = started
            try:
                if not (peer_ip and hasattr(http.client.HTTPConnection.connect, "__wrapped__")):
                    response = original(*args, **kwargs)
                else:  # http.client instrumented: its span gets the peer address
                    with set_ip_on_next_http_connection(span):
                        response = original(*args, **kwargs)
            except BaseException as exc:
                finish(span, token, None, exc)
                raise
            return finish(span, token, response)

        return wrapper

    def wrap_async(self, original: Callable, describe: Callable) -> Callable:
        """The lean wrapper of the coroutine method ``original`` (a cancellation ends the span)."""
        start, finish = self.start, self.finish

        async def wrapper(*args, **kwargs):
            started = start(describe, args, kwargs)
            if started is None:
                return await original(*args, **kwargs)
            span, token, args, kwargs = started
            try:
                response = await original(*args, **kwargs)
            except BaseException as exc:
                finish(span, token, None, exc)
                raise
            return finish(span, token, response)

        return wrapper
