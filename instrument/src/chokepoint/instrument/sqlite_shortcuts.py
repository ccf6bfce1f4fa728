"""Trace sqlite3's connection shortcuts ``conn.execute()`` and ``conn.executemany()``.

The upstream sqlite3 instrumentor wraps each connection in the DB-API proxy, which traces
statements run through ``conn.cursor()``.  sqlite3's own shortcuts (``conn.execute(sql)``
— the idiom of most sqlite3 code) reach the real connection through the proxy and make
a cursor the proxy never sees: those queries had no span, no
``db.client.operation.duration`` and no share of the request's DB time.

Usage (the ``chokepoint_sqlite3`` integration calls it after the sqlite3 instrumentor,
:mod:`chokepoint.instrument.integrations.sqlite3`)::

    undo = install_sqlite3_shortcuts()

Connections to sqlite3 get a proxy whose shortcuts do what sqlite3's do — open a cursor,
run the statement on it, return the cursor — through the traced cursor; other DB-API
drivers keep the upstream proxy.  ``executescript()`` (schema scripts) stays untraced, as
upstream leaves it on cursors too.  If the upstream internals changed, nothing is patched
and a debug line says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)
_MARK = "_chokepoint_sqlite3_shortcuts"


def install_sqlite3_shortcuts() -> Callable[[], None] | None:
    try:
        import sqlite3

        from opentelemetry.instrumentation import dbapi
    except ImportError:
        return None
    original = getattr(dbapi, "get_traced_connection_proxy", None)
    base = getattr(dbapi, "TracedConnectionProxy", None)
    if original is None or base is None:
        _log.debug("chokepoint: DB-API instrumentation internals changed; sqlite3 conn.execute() stays untraced")
        return None
    if getattr(original, _MARK, False):
        return None  # already installed

    class TracedSqliteConnectionProxy(base):
        def execute(self, *args, **kwargs):
            cursor = self.cursor()
            cursor.execute(*args, **kwargs)
            return cursor

        def executemany(self, *args, **kwargs):
            cursor = self.cursor()
            cursor.executemany(*args, **kwargs)
            return cursor

    def get_traced_connection_proxy(connection, db_api_integration, *args, **kwargs):
        if isinstance(connection, sqlite3.Connection):
            return TracedSqliteConnectionProxy(connection, db_api_integration)
        return original(connection, db_api_integration, *args, **kwargs)

    setattr(get_traced_connection_proxy, _MARK, True)
    dbapi.get_traced_connection_proxy = get_traced_connection_proxy

    def undo() -> None:
        if dbapi.get_traced_connection_proxy is get_traced_connection_proxy:
            dbapi.get_traced_connection_proxy = original

    return undo
