"""A leaner hot path for the upstream httpx instrumentor: same spans, same attributes.

Why: on every request and every response the upstream httpx instrumentor copies all
headers into a lower-cased dict (``_normalize_headers``) and only then asks whether any
header is to be captured at all — by default none is.  In a profile of the overhead
benchmark (docs/BENCHMARKS.md) those two copies cost about as much as the span's own
attributes.

Usage (the agent calls it after the instrumentors are loaded)::

    undo = install_lean_httpx()

The normalized headers become a mapping that copies them on first use, so they are
copied only when ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`` /
``..._RESPONSE`` name a header; what is captured does not change.
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
    original = getattr(upstream, "_normalize_headers", None)
    if original is None or getattr(original, "_chokepoint", False):
        if original is None:
            _log.debug("chokepoint: httpx instrumentor internals changed; lean headers not installed")
        return None

    def _normalize_headers(headers, module):
        return LazyHeaders(original, headers, module)

    _normalize_headers._chokepoint = True
    _normalize_headers.__wrapped__ = original
    upstream._normalize_headers = _normalize_headers

    def undo() -> None:
        if upstream._normalize_headers is _normalize_headers:
            upstream._normalize_headers = original

    return undo
