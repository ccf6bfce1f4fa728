"""The normalizers that turn raw attribute values into low-cardinality keys, and the
attribute-name aliases they read.

The aliases (each ``*_KEYS`` tuple: the current name first, then older names; readers take
the first one present with ``first``) live in :mod:`chokepoint.semconv.aliases`, shared with
the agent, and are re-exported here.  ``normalize_path`` folds ids out of URL paths (``/users/42`` →
``/users/{id}``), ``normalize_statement`` replaces SQL literals (``WHERE id = 42`` →
``WHERE id = ?``, ``IN (1, 2, 3)`` → ``IN (?)``) and ``route_name`` builds the route key
used everywhere (the ``http.route`` template, e.g. ``"/items/{id}"``).  Both normalizers are memoised (bounded).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from chokepoint.semconv.aliases import *  # noqa: F403  (every *_KEYS tuple, SPAN_KEYS)
from chokepoint.semconv.aliases import (
    DB_OPERATION_KEYS,
    DB_STATEMENT_KEYS,
    DB_SUMMARY_KEYS,
    DB_SYSTEM_KEYS,
    SERVER_ADDRESS_KEYS,
    SERVER_PORT_KEYS,
    URL_FULL_KEYS,
    first,
)

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}|(?=[^/]*\d)[A-Za-z0-9_\-]{20,})$"
)
_CACHE_MAX = 10000
_path_cache: dict[str, str] = {}
_stmt_cache: dict[str, str] = {}


def normalize_path(path: str) -> str:
    """``/users/42/orders/9f3c...`` → ``/users/{id}/orders/{id}``; query string dropped."""
    got = _path_cache.get(path)
    if got is not None:
        return got
    p = path.split("?", 1)[0].split("#", 1)[0] or "/"
    out = "/".join("{id}" if seg and _ID_SEGMENT.match(seg) else seg for seg in p.split("/"))
    if len(_path_cache) >= _CACHE_MAX:
        _path_cache.clear()
    _path_cache[path] = out
    return out


_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_NUMBER = re.compile(r"(?<![\w$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_SQL_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SQL_VALUES = re.compile(r"(VALUES\s*\(\?\))(?:\s*,\s*\(\?\))+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
STATEMENT_MAX_CHARS = 200


def normalize_statement(statement: str) -> str:
    """SQL literals → ``?``, lists folded, whitespace collapsed, at most 200 characters."""
    got = _stmt_cache.get(statement)
    if got is not None:
        return got
    s = _SQL_STRING.sub("?", statement)
    s = _SQL_NUMBER.sub("?", s)
    s = _SPACES.sub(" ", s).strip()
    s = _SQL_IN_LIST.sub("(?)", s)
    s = _SQL_VALUES.sub(r"\1", s)
    if len(s) > STATEMENT_MAX_CHARS:
        s = s[: STATEMENT_MAX_CHARS - 1] + "…"
    if len(_stmt_cache) >= _CACHE_MAX:
        _stmt_cache.clear()
    _stmt_cache[statement] = s
    return s


def route_name(route: str | None, path: str | None = None, fallback: str | None = None) -> str:
    """The route key: the ``http.route`` template, else the normalized path, else ``fallback``.

    The method is not part of the key: our agent labels its breakdown and per-route
    counters with ``http.route`` alone, and every reader joins on this key.
    """
    if route:
        return canonical_route(str(route))
    if path:
        return normalize_path(str(path))
    return fallback or "unknown"


def canonical_route(route: str) -> str:
    """One spelling per route in every API and page: a leading slash, the framework's template kept.

    Django reports ``api/articles/<int:pk>`` (and regex routes as ``^api/articles/$``), Flask
    ``/api/users/<int:id>``, FastAPI ``/items/{id}``: all are keyed with a leading slash
    (``/api/articles/<int:pk>``, ``/api/articles/``).  Non-path names (``unknown``, ``*``,
    anything with a space) are kept as they are."""
    if not route or route.startswith("/") or " " in route or route in ("unknown", "*"):
        return route
    if route.startswith("^"):
        route = route[1:].removesuffix("$")
    return route if route.startswith("/") else "/" + route


def http_target(attrs: dict) -> str:
    """Dependency target of an outbound HTTP call: ``host`` or ``host:port`` (non-default port)."""
    host = first(attrs, SERVER_ADDRESS_KEYS)
    port = first(attrs, SERVER_PORT_KEYS)
    if host is None:
        url = first(attrs, URL_FULL_KEYS)
        if url:
            try:
                parts = urlsplit(str(url))
                host = parts.hostname
                port = port or parts.port
            except ValueError:
                host = None
    if host is None:
        return "unknown"
    host = str(host)
    name, colon, given = host.rpartition(":")
    if colon and given.isdigit() and ":" not in name:  # http.host is "host:port" (older semconv)
        host, port = name, port or given
    if port and int(port) not in (80, 443):
        return f"{host}:{int(port)}"
    return host


def db_target(attrs: dict) -> str:
    """Dependency target of a DB call: query summary, else normalized statement, else operation, else system."""
    summary = first(attrs, DB_SUMMARY_KEYS)
    if summary:
        return str(summary)
    stmt = first(attrs, DB_STATEMENT_KEYS)
    if stmt:
        return normalize_statement(str(stmt))
    op = first(attrs, DB_OPERATION_KEYS)
    if op:
        return str(op)
    return str(first(attrs, DB_SYSTEM_KEYS) or "db")
