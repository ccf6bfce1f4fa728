"""Lean httpx client spans: the upstream instrumentor's span, without its per-call machinery.

Why: the upstream httpx instrumentation costs far more than its span (figures in
docs/BENCHMARKS.md, "HTTP client integrations"): its transport wrapper (``_handle_request_wrapper``) also copies
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
(chokepoint's default); what every lean client span is and does (name, scope, status,
exceptions, propagation, header capture, exclusions, suppression) is in
:mod:`chokepoint.instrument.http_client_spans`.  What is httpx's own:

- attributes ``url.full`` (credentials and signed-URL query values redacted as upstream),
  ``server.address``/``network.peer.address``, ``server.port``/``network.peer.port`` (when
  the URL names a port), ``network.protocol.version`` from the response;
- an exception sets ``error.type`` = its class (an ``httpx.Response`` it carries, its
  status first); HTTP instrumentation is not suppressed inside the call (as upstream);
- captured headers are read from httpx's headers only when a capture variable names some,
  and only then is any header copied (lower-cased, comma lists split, as upstream);
- ``OTEL_PYTHON_HTTPX_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS`` are honoured;
- the timeout flag ``chokepoint.http.client.calls_without_timeout`` (read timeout ``None``)
  is counted here, once per call that reaches the network (each redirect hop is a call),
  instead of by a second patch on ``Client.send``.

When the lean path is not used (:func:`lean_httpx_wanted`): ``CHOKEPOINT_HTTPX=upstream``
(the upstream instrumentor, and the timeout flag on ``Client.send``), ``httpx`` in
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, or HTTP semconv other than ``http``.  Transports
other than ``HTTPTransport``/``AsyncHTTPTransport`` (``MockTransport``, ``WSGITransport``,
custom ones not delegating to them) are not traced, as upstream.

What this path still costs is mostly the span itself (start, end, the processor).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chokepoint.instrument.http_client_spans import ClientSpans, add_server, install_patches, lean_client_wanted, redacted_url

_log = logging.getLogger(__name__)


def lean_httpx_wanted(environ=None) -> bool:
    """Whether chokepoint's httpx path replaces the upstream instrumentor
    (:func:`~chokepoint.instrument.http_client_spans.lean_client_wanted`)."""
    return lean_client_wanted("httpx", environ)


def _normalized_headers(headers) -> dict[str, list[str]]:
    """httpx headers as upstream hands them to the capture helper: lower-case names, comma lists split."""
    normalized: dict[str, list[str]] = {}
    for key in headers:
        normalized.setdefault(key.lower(), []).extend(headers.get_list(key, split_commas=True))
    return normalized


def _protocol_version(response) -> str | None:
    version = response.http_version
    return version.replace("HTTP/", "") if version else None


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


def make_wrappers(sync_original: Callable, async_original: Callable, tracer_provider=None, instruments=None):
    """The lean ``handle_request`` / ``handle_async_request`` around the transports' originals."""
    import httpx

    spans = ClientSpans(
        "httpx",
        tracer_provider,
        protocol_version=_protocol_version,
        response_type=httpx.Response,
        normalize_headers=_normalized_headers,
        suppress_inside=False,
        peer_ip=False,
    )
    methods, captured, excluded = spans.methods, spans.headers, spans.excluded
    flag = _timeout_flag(instruments)
    request_type = httpx.Request

    def describe(args: tuple, kwargs: dict):
        request = args[1] if len(args) > 1 else kwargs.get("request")
        if not isinstance(request, request_type):
            return None
        url = request.url
        full = str(url)
        if excluded and excluded.url_disabled(full):
            return None
        if flag is not None:
            flag(request)
        name, method_attributes = methods(request.method)
        attributes = dict(method_attributes)
        full = redacted_url(full)
        if full:
            attributes["url.full"] = full
        headers = request.headers
        if captured.request:
            attributes.update(captured.of_request(headers))
        add_server(attributes, url.host, url.port)
        return name, attributes, headers, args, kwargs

    return spans.wrap(sync_original, describe), spans.wrap_async(async_original, describe)


def install_lean_httpx(instruments=None, tracer_provider=None, environ=None, config=None) -> Callable[[], None] | None:
    """Patch the httpx transports (module docstring); the undo callable, or ``None`` if not
    wanted (the plan for ``config``, else for the environment) or installed already.

    ``instruments``: the agent's (``None``: no missing-timeout flag); ``tracer_provider``:
    the global one when ``None``.
    """

    def targets() -> list[tuple[type, str]]:
        import httpx

        return [(httpx.HTTPTransport, "handle_request"), (httpx.AsyncHTTPTransport, "handle_async_request")]

    return install_patches("httpx", environ, targets, lambda sync, async_: make_wrappers(sync, async_, tracer_provider, instruments), config)
