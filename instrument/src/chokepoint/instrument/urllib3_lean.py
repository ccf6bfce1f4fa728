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
the span upstream (with chokepoint's hook) makes under ``OTEL_SEMCONV_STABILITY_OPT_IN=http``;
what every lean client span is and does is in :mod:`chokepoint.instrument.http_client_spans`.
What is urllib3's own:

- one span per outermost ``urlopen`` (retries and redirects urllib3 follows inside it are
  not spans of their own, as upstream);
- ``url.full`` (as called, or the pool's ``scheme://host[:port]`` + path; not redacted, as
  upstream), captured request headers, ``server.address`` / ``server.port`` (the pool's),
  then ``http.response.status_code``, ``error.type`` (>= 400), captured response headers;
  no ``network.protocol.version`` (upstream sets it on its metrics only);
- an exception is recorded (status ERROR, ``"Type: msg"``) without ``error.type``, as upstream;
- the global propagator's headers go into a copy of the call's headers, which is what is
  sent (as upstream: a call without headers sends only those, not the pool's defaults);
- the method is sanitized as called (upper-cased), not stripped first, as upstream;
- ``OTEL_PYTHON_URLLIB3_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS`` are honoured;
  urllib3 is suppressed inside; when ``http.client`` is instrumented the socket's peer
  address is set as upstream does.

chokepoint's own urllib3 flags (timeouts, retries: :mod:`chokepoint.instrument.client_flags`)
stay a separate patch, on every ``urlopen`` including the inner ones.  Not used
(:func:`lean_urllib3_wanted`) with ``CHOKEPOINT_URLLIB3=upstream``, ``urllib3`` in
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` or HTTP semconv other than ``http``.

Its cost against the upstream instrumentor: docs/BENCHMARKS.md, "HTTP client integrations".
"""

from __future__ import annotations

from collections.abc import Callable

from chokepoint.instrument.http_client_spans import ClientSpans, install_patches, lean_client_wanted


def lean_urllib3_wanted(environ=None) -> bool:
    """Whether chokepoint's urllib3 path replaces the upstream instrumentor
    (:func:`~chokepoint.instrument.http_client_spans.lean_client_wanted`)."""
    return lean_client_wanted("urllib3", environ)


def _url_of(pool, url: str) -> str:
    """``url`` as called, or the pool's ``scheme://host[:port]`` + a path."""
    if not url.startswith("/"):
        return url
    scheme, port = pool.scheme, pool.port
    full = scheme + "://" + pool.host
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        full += ":" + str(port)
    return full + url


def make_urlopen(original: Callable, tracer_provider=None) -> Callable:
    """The lean ``HTTPConnectionPool.urlopen`` around ``original``."""
    spans = ClientSpans("urllib3", tracer_provider, status_attribute="status", strip_method=False, exception_error_type=False)
    methods, captured, excluded = spans.methods, spans.headers, spans.excluded

    def describe(args: tuple, kwargs: dict):  # urlopen(pool, method, url, body=None, headers=None, ...)
        pool = args[0]
        method = (args[1] if len(args) > 1 else kwargs["method"]).upper()
        full = _url_of(pool, args[2] if len(args) > 2 else kwargs["url"])
        if excluded and excluded.url_disabled(full):
            return None
        headers = args[4] if len(args) > 4 else kwargs.get("headers")
        headers = headers.copy() if headers is not None else {}  # what is sent: the call's headers + the context
        if len(args) > 4:
            args = (*args[:4], headers, *args[5:])
        else:
            kwargs = {**kwargs, "headers": headers}
        name, method_attributes = methods(method)
        attributes = dict(method_attributes)
        if full:
            attributes["url.full"] = full
        if captured.request:
            attributes.update(captured.of_request(headers))
        host, port = getattr(pool, "host", None), getattr(pool, "port", None)
        if host:
            attributes["server.address"] = str(host).strip("[]")
        if isinstance(port, int):
            attributes["server.port"] = port
        return name, attributes, headers, args, kwargs

    return spans.wrap(original, describe)


def install_lean_urllib3(tracer_provider=None, environ=None, config=None) -> Callable[[], None] | None:
    """Patch ``HTTPConnectionPool.urlopen`` (module docstring); the undo callable, or ``None``
    if not wanted or installed already."""

    def targets() -> list[tuple[type, str]]:
        from urllib3.connectionpool import HTTPConnectionPool

        return [(HTTPConnectionPool, "urlopen")]

    return install_patches("urllib3", environ, targets, lambda original: (make_urlopen(original, tracer_provider),), config)
