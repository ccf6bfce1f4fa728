"""A leaner hot path for the upstream httpx instrumentor: same spans, same attributes.

Why: on every request and every response the upstream httpx instrumentor copies all
headers into a lower-cased dict (``_normalize_headers``) and only then asks whether any
header is to be captured at all — by default none is; and it parses the request's URL
again from its string form (``_extract_parameters``) although the request carries it
parsed.  In a profile of the overhead benchmark (docs/BENCHMARKS.md) these cost about
as much as the span itself.

Usage (the agent calls it after the instrumentors are loaded)::

    undo = install_lean_httpx()

The normalized headers become a mapping that copies them on first use, so they are
copied only when ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`` /
``..._RESPONSE`` name a header; what is captured does not change.  The request's own
``httpx.URL`` is passed on instead of a re-parsed copy (equal, same string).
``CHOKEPOINT_HTTPX=upstream`` leaves the upstream instrumentor untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

_log = logging.getLogger(__name__)


class LazyHeaders(Mapping):
    """``normalize(headers, module)`` computed on first access; truthiness without it."""

    __slots__ = ("_args", "_normalize", "_value")

    def __init__(self, normalize: Callable, headers, module):
        self._normalize = normalize
        self._args = (headers, module)
        self._value: dict | None = None

    def _get(self) -> dict:
        if self._value is None:
            self._value = self._normalize(*self._args)
        return self._value

    def __bool__(self) -> bool:
        return bool(self._args[0])

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self) -> Iterator:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def install_lean_httpx() -> Callable[[], None] | None:
    try:
        from opentelemetry.instrumentation import httpx as upstream
    except ImportError:
        return None
    original_normalize = getattr(upstream, "_normalize_headers", None)
    original_extract = getattr(upstream, "_extract_parameters", None)
    if original_normalize is None or original_extract is None:
        _log.debug("chokepoint: httpx instrumentor internals changed; lean path not installed")
        return None
    if getattr(original_normalize, "_chokepoint", False):
        return None

    def _normalize_headers(headers, module):
        return LazyHeaders(original_normalize, headers, module)

    def _extract_parameters(args, kwargs, module):
        request = args[0] if args else None
        if isinstance(request, module.Request):
            return request.method.encode(), request.url, request.headers, request.stream, request.extensions
        return original_extract(args, kwargs, module)

    replaced = []
    for name, original, lean in (
        ("_normalize_headers", original_normalize, _normalize_headers),
        ("_extract_parameters", original_extract, _extract_parameters),
    ):
        lean._chokepoint = True
        lean.__wrapped__ = original
        setattr(upstream, name, lean)
        replaced.append((name, original, lean))

    def undo() -> None:
        for name, original, lean in replaced:
            if getattr(upstream, name) is lean:
                setattr(upstream, name, original)

    return undo
