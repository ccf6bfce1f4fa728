"""Flags on outbound calls and reads that the upstream instrumentors don't report.

Usage (the agent calls this once; each returned callable undoes one patch)::

    undo = install_client_flags(instruments, config)

What is counted (names from :mod:`chokepoint.instrument.signals`):

- ``chokepoint.http.client.calls_without_timeout`` — a urllib3 (and therefore
  ``requests``) call whose effective read timeout is ``None`` (requests' default), or an
  httpx call whose ``read`` timeout is ``None`` (counted by the lean httpx transport
  wrapper, :mod:`chokepoint.instrument.httpx_lean`, when it is used; else by a patch on
  ``Client.send``).  Attributes ``server.address``,
  ``http.route`` (of the current request, when inside one).
- ``chokepoint.http.client.retries`` — each urllib3 retry (a ``Retry`` whose history
  ends in a non-redirect attempt; requests' ``HTTPAdapter(max_retries=...)`` included).
  Repeated identical calls after a failure within one request are counted by the
  breakdown (:mod:`chokepoint.instrument.breakdown`).
- ``chokepoint.db.repeated_reads`` — a SQLAlchemy ``SELECT`` whose statement and
  parameters were already executed within ``CHOKEPOINT_REPEATED_READ_WINDOW_S``
  (a cache would have answered it).  Attributes ``db.query.text`` (normalized).
  Only statement/parameter *hashes* are kept, never values.
- Outbound calls made while a DB connection is held are counted by the span processor
  (:mod:`chokepoint.instrument.sampling`), from the pool probe's context.

Each patch checks cheaply and calls the original unchanged; a failure in the check is
swallowed and never reaches the app.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from chokepoint.instrument import context, signals
from chokepoint.instrument.compat import urllib3_default_timeout, urllib3_read_timeout
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.instruments import AgentInstruments
from chokepoint.instrument.sanitize import normalize_sql

_log = logging.getLogger(__name__)

MAX_REMEMBERED_READS = 20000
MAX_READ_STATEMENTS = 200


def _attrs(host) -> dict:
    attrs = {signals.ATTR_SERVER_ADDRESS: str(host or "unknown")}
    request = context.current()
    if request is not None:
        attrs[signals.ATTR_HTTP_ROUTE] = request.route
    return attrs


def urllib3_timeout_missing(timeout, pool_timeout) -> bool:
    """Whether a urllib3 call with ``timeout`` (maybe the default sentinel) may wait forever."""
    from urllib3.util.timeout import Timeout

    default = urllib3_default_timeout()
    if timeout is default:
        timeout = pool_timeout
    if timeout is default:
        return socket.getdefaulttimeout() is None
    if isinstance(timeout, Timeout):
        if timeout.total is not None:
            return False
        read = urllib3_read_timeout(timeout)
        if read is default:
            return socket.getdefaulttimeout() is None
        return read is None
    return timeout is None


def _is_retry(retries) -> bool:
    history = getattr(retries, "history", None)
    return bool(history) and history[-1].redirect_location is None


def _install_urllib3(instruments: AgentInstruments) -> Callable[[], None] | None:
    try:
        import urllib3.connectionpool
        import wrapt
    except ImportError:
        return None
    without_timeout = instruments.calls_without_timeout
    retries_counter = instruments.retries
    default_timeout = urllib3_default_timeout()

    def urlopen(wrapped, pool, args, kwargs):
        try:
            retries = kwargs.get("retries", args[4] if len(args) > 4 else None)
            if _is_retry(retries):
                retries_counter.add(1, _attrs(pool.host))
            elif not getattr(retries, "history", None):
                timeout = kwargs.get("timeout", args[7] if len(args) > 7 else default_timeout)
                if urllib3_timeout_missing(timeout, pool.timeout):
                    without_timeout.add(1, _attrs(pool.host))
        except Exception:
            _log.debug("chokepoint: urllib3 flag check failed", exc_info=True)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(urllib3.connectionpool, "HTTPConnectionPool.urlopen", urlopen)

    def undo() -> None:
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(urllib3.connectionpool.HTTPConnectionPool, "urlopen")

    return undo


def _install_httpx(instruments: AgentInstruments, config: AgentConfig) -> Callable[[], None] | None:
    from chokepoint.instrument.http_client_spans import lean_client_wanted

    if lean_client_wanted("httpx", config=config):
        return None  # the lean httpx transport wrapper counts it (chokepoint.instrument.httpx_lean)
    try:
        import httpx
        import wrapt
    except ImportError:
        return None
    without_timeout = instruments.calls_without_timeout

    def send(wrapped, client, args, kwargs):
        try:
            request = kwargs.get("request", args[0] if args else None)
            timeout = request.extensions.get("timeout") if request is not None else None
            if isinstance(timeout, dict) and timeout.get("read") is None:
                without_timeout.add(1, _attrs(request.url.host))
        except Exception:
            _log.debug("chokepoint: httpx flag check failed", exc_info=True)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(httpx, "Client.send", send)
    wrapt.wrap_function_wrapper(httpx, "AsyncClient.send", send)

    def undo() -> None:
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(httpx.Client, "send")
        unwrap(httpx.AsyncClient, "send")

    return undo


class RepeatedReads:
    """Remembers hashes of recent reads; ``seen(statement, parameters)`` counts repeats."""

    def __init__(self, instruments: AgentInstruments, window_s: float, clock=time.monotonic):
        self.counter = instruments.repeated_reads.lean
        self.window_s = window_s
        self.clock = clock
        self._last_seen: dict[int, float] = {}
        self._statements: set[str] = set()
        self._reads: dict[str, tuple | None] = {}  # statement -> (normalized,) for a read, None for anything else

    def seen(self, statement: str, parameters) -> bool:
        read = self._reads.get(statement, _UNKNOWN)
        if read is _UNKNOWN:
            read = self._remember(statement)
        if read is None:
            return False
        key = hash((statement, repr(parameters)))
        now = self.clock()
        last_seen = self._last_seen
        last = last_seen.get(key)
        if len(last_seen) >= MAX_REMEMBERED_READS:
            last_seen.clear()
        last_seen[key] = now
        if last is None or now - last > self.window_s:
            return False
        self.counter.add(1, read, _K_STATEMENT)
        return True

    def _remember(self, statement: str) -> tuple | None:
        """``(normalized statement,)`` for a ``SELECT`` (``"other"`` past ``MAX_READ_STATEMENTS``), else ``None``."""
        if statement.lstrip()[:6].lower() != "select":
            read = None
        else:
            normalized = normalize_sql(statement)
            if normalized not in self._statements:
                if len(self._statements) >= MAX_READ_STATEMENTS:
                    normalized = "other"
                else:
                    self._statements.add(normalized)
            read = (normalized,)
        if len(self._reads) >= MAX_REMEMBERED_READS:
            self._reads.clear()
        self._reads[statement] = read
        return read


_UNKNOWN = object()
_K_STATEMENT = (signals.ATTR_DB_STATEMENT,)


def _install_sqlalchemy(instruments: AgentInstruments, config: AgentConfig) -> Callable[[], None] | None:
    """Count repeated reads from SQLAlchemy's ``DefaultDialect.do_execute`` / ``do_execute_no_params``.

    Not from a ``before_cursor_execute`` listener on ``Engine``: any engine listener makes
    SQLAlchemy leave its fast statement path for every engine (its cost: docs/BENCHMARKS.md).  The dialect methods see the statement and
    parameters the listener saw; no SQLAlchemy dialect overrides them (a third-party dialect
    that does is not counted).  ``executemany`` is not looked at: reads do not go through it.
    """
    if config.repeated_read_window_s <= 0:
        return None
    try:
        from sqlalchemy.engine.default import DefaultDialect
    except ImportError:
        return None
    original_execute = DefaultDialect.__dict__.get("do_execute")
    original_no_params = DefaultDialect.__dict__.get("do_execute_no_params")
    if original_execute is None or original_no_params is None or getattr(original_execute, "_chokepoint", False):
        return None
    seen = RepeatedReads(instruments, config.repeated_read_window_s).seen

    def do_execute(self, cursor, statement, parameters, context=None):
        try:
            seen(statement, parameters)
        except Exception:
            _log.debug("chokepoint: repeated-read check failed", exc_info=True)
        return original_execute(self, cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor, statement, context=None):
        try:
            seen(statement, ())
        except Exception:
            _log.debug("chokepoint: repeated-read check failed", exc_info=True)
        return original_no_params(self, cursor, statement, context)

    for wrapper, original in ((do_execute, original_execute), (do_execute_no_params, original_no_params)):
        wrapper._chokepoint = True
        wrapper.__wrapped__ = original
    DefaultDialect.do_execute = do_execute
    DefaultDialect.do_execute_no_params = do_execute_no_params

    def undo() -> None:
        if DefaultDialect.__dict__.get("do_execute") is do_execute:
            DefaultDialect.do_execute = original_execute
        if DefaultDialect.__dict__.get("do_execute_no_params") is do_execute_no_params:
            DefaultDialect.do_execute_no_params = original_no_params

    return undo


def install_client_flags(instruments: AgentInstruments, config: AgentConfig) -> list[Callable[[], None]]:
    undo: list[Callable[[], None]] = []
    for installer in (
        lambda: _install_urllib3(instruments),
        lambda: _install_httpx(instruments, config),
        lambda: _install_sqlalchemy(instruments, config),
    ):
        try:
            remover = installer()
        except Exception:
            _log.warning("chokepoint: a client flag patch failed to install", exc_info=True)
            continue
        if remover is not None:
            undo.append(remover)
    return undo
