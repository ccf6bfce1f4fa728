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
``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (chokepoint's default); what every lean client span
is and does is in :mod:`chokepoint.instrument.http_client_spans`.  What is requests' own:

- one span per outermost ``Session.send``: the redirects it follows (inside it, with HTTP
  instrumentation suppressed) share its span, as upstream;
- ``url.full`` (credentials and signed-URL query values redacted), ``user_agent.original`` /
  ``user_agent.synthetic.type``, captured request headers, ``server.address`` /
  ``network.peer.address``, ``server.port`` / ``network.peer.port`` (when the URL names a
  port), then ``http.response.status_code``, ``error.type`` (>= 400),
  ``network.protocol.version``, captured response headers;
- an exception sets ``error.type`` = its class (a ``requests.Response`` it carries, its status
  first);
- the urllib3 instrumentation is suppressed inside (one span per call, not two); when
  ``http.client`` is instrumented the socket's peer address is set as upstream does;
- ``OTEL_PYTHON_REQUESTS_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS`` are honoured.

Not used (:func:`lean_requests_wanted`) with ``CHOKEPOINT_REQUESTS=upstream``, ``requests``
in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` or HTTP semconv other than ``http``.

Its cost against the upstream instrumentor: docs/BENCHMARKS.md, "HTTP client integrations".
"""

from __future__ import annotations

from collections.abc import Callable

from chokepoint.instrument.http_client_spans import ClientSpans, add_server, install_patches, lean_client_wanted, redacted_url

_MAX_CACHED = 64


def lean_requests_wanted(environ=None) -> bool:
    """Whether chokepoint's ``requests`` path replaces the upstream instrumentor
    (:func:`~chokepoint.instrument.http_client_spans.lean_client_wanted`)."""
    return lean_client_wanted("requests", environ)


class _UserAgents:
    """``user_agent.original`` / ``user_agent.synthetic.type`` of a ``User-Agent`` value, as upstream, cached."""

    def __init__(self):
        from opentelemetry.util.http import detect_synthetic_user_agent, normalize_user_agent

        self._normalize = normalize_user_agent
        self._synthetic = detect_synthetic_user_agent
        self._known: dict = {}

    def __call__(self, value) -> dict:
        cacheable = value is None or isinstance(value, str)
        if cacheable:
            known = self._known.get(value)
            if known is not None:
                return known
        attributes = {}
        agent = self._normalize(value)
        synthetic = self._synthetic(agent)
        if synthetic:
            attributes["user_agent.synthetic.type"] = synthetic
        if agent:
            attributes["user_agent.original"] = agent
        if cacheable and len(self._known) < _MAX_CACHED:
            self._known[value] = attributes
        return attributes


def _protocol_version(response) -> str | None:
    raw = response.raw
    version = getattr(raw, "version", None) if raw is not None else None
    return ("1.1" if version == 11 else "1.0") if version else None


def make_send(original: Callable, tracer_provider=None) -> Callable:
    """The lean ``Session.send`` around ``original``."""
    from urllib.parse import urlparse

    from requests.models import Response
    from requests.structures import CaseInsensitiveDict

    spans = ClientSpans("requests", tracer_provider, protocol_version=_protocol_version, response_type=Response)
    methods, captured, excluded = spans.methods, spans.headers, spans.excluded
    user_agent = _UserAgents()

    def describe(args: tuple, kwargs: dict):
        request = args[1] if len(args) > 1 else kwargs["request"]
        url = request.url
        if excluded and excluded.url_disabled(url):
            return None
        if request.headers is None:
            request.headers = CaseInsensitiveDict()
        headers = request.headers
        name, method_attributes = methods(request.method)
        attributes = dict(method_attributes)
        url = redacted_url(url)
        if url:
            attributes["url.full"] = url
        attributes.update(user_agent(headers.get("User-Agent")))
        if captured.request:
            attributes.update(captured.of_request(headers))
        host = port = None
        try:  # what parses before an error counts
            parsed = urlparse(url)
            host = parsed.hostname
            port = parsed.port
        except ValueError:
            pass
        add_server(attributes, host, port)
        return name, attributes, headers, args, kwargs

    return spans.wrap(original, describe)


def install_lean_requests(tracer_provider=None, environ=None, config=None) -> Callable[[], None] | None:
    """Patch ``requests.Session.send`` (module docstring); the undo callable, or ``None`` if
    not wanted or installed already."""

    def targets() -> list[tuple[type, str]]:
        from requests.sessions import Session

        return [(Session, "send")]

    return install_patches("requests", environ, targets, lambda original: (make_send(original, tracer_provider),), config)
