"""Keep secrets and payloads out of everything the agent exports.

Usage::

    normalize_sql("SELECT * FROM t WHERE id = 42 AND name = 'bob'")
    # -> "SELECT * FROM t WHERE id = ? AND name = ?"
    sanitize_url("https://user:pw@api.example.com/v1/x?token=abc#f")
    # -> "https://api.example.com/v1/x"
    sanitize_attributes(span.attributes, header_allowlist=frozenset())

Rules (DESIGN.md "What it must never do"):

- SQL: string, numeric, hex, dollar-quoted and boolean literals become ``?``;
  ``IN (?, ?, ?)`` collapses to ``IN (?)``; comments (e.g. sqlcommenter) are removed.
- URLs: credentials, query string and fragment are dropped.
- Headers (``http.request.header.*`` / ``http.response.header.*`` attributes): only
  ``DEFAULT_HEADER_ALLOWLIST`` plus ``CHOKEPOINT_HEADER_ALLOWLIST`` names are kept.
- Payload-like attributes (message bodies, request/response bodies, query parameters)
  are removed.

``normalize_sql`` is cached (bounded) because the same statements repeat; exported
spans are sanitized on the export thread, never on the request path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

DEFAULT_HEADER_ALLOWLIST = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "accept",
        "accept-encoding",
        "user-agent",
        "cache-control",
        "x-request-id",
        "traceparent",
    }
)

SQL_ATTRIBUTES = frozenset({"db.statement", "db.query.text"})
URL_ATTRIBUTES = frozenset({"url.full", "http.url"})
TARGET_ATTRIBUTES = frozenset({"http.target"})
DROPPED_ATTRIBUTES = frozenset(
    {
        "url.query",
        "db.query.parameter",
        "messaging.message.body",
        "http.request.body",
        "http.response.body",
        "db.statement.parameters",
    }
)
_HEADER_PREFIXES = ("http.request.header.", "http.response.header.")

_SQL_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<string>[EeNnBbXx]?'(?:[^']|'')*')
    | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
    | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<hex>0[xX][0-9A-Fa-f]+)
    | (?P<number>(?<![\w$])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_BOOLEANS = frozenset({"true", "false", "null"})
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _replace_token(match: re.Match) -> str:
    kind = match.lastgroup
    if kind == "tag":  # inside a dollar-quoted literal
        kind = "dollar"
    if kind in ("string", "dollar", "hex", "number"):
        return "?"
    if kind == "comment":
        return " "
    if kind == "ident":
        word = match.group(0)
        return "?" if word.lower() in _BOOLEANS - {"null"} else word
    return match.group(0)  # quoted identifiers stay


@lru_cache(maxsize=2048)
def normalize_sql(statement: str) -> str:
    """The statement with every literal replaced by ``?`` (see module docstring)."""
    if not statement:
        return statement
    replaced = _SQL_TOKEN.sub(_replace_token, statement)
    replaced = _IN_LIST.sub("IN (?)", replaced)
    return _SPACES.sub(" ", replaced).strip()


def sanitize_url(url: str) -> str:
    """``url`` without credentials, query string or fragment.  Unparseable -> ``""``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def strip_query(target: str) -> str:
    """A request target (``/path?q=1``) without its query string or fragment."""
    return target.split("?", 1)[0].split("#", 1)[0]


def header_allowed(attribute: str, allowlist: Iterable[str] = ()) -> bool:
    """Whether a ``http.*.header.<name>`` attribute may be exported."""
    for prefix in _HEADER_PREFIXES:
        if attribute.startswith(prefix):
            name = attribute[len(prefix) :].replace("_", "-").lower()
            return name in DEFAULT_HEADER_ALLOWLIST or name in allowlist
    return True


def sanitize_attributes(attributes: Mapping[str, object] | None, header_allowlist: Iterable[str] = ()) -> dict:
    """A sanitized copy of span/event attributes (see module docstring)."""
    if not attributes:
        return {}
    allow = frozenset(header_allowlist)
    clean: dict[str, object] = {}
    for key, value in attributes.items():
        if key in DROPPED_ATTRIBUTES or not header_allowed(key, allow):
            continue
        if key in SQL_ATTRIBUTES and isinstance(value, str):
            value = normalize_sql(value)
        elif key in URL_ATTRIBUTES and isinstance(value, str):
            value = sanitize_url(value)
        elif key in TARGET_ATTRIBUTES and isinstance(value, str):
            value = strip_query(value)
        clean[key] = value
    return clean
