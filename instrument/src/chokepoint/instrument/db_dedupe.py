"""One span per SQL statement when SQLAlchemy runs over an instrumented DB-API driver.

With stock auto-instrumentation, a query through SQLAlchemy on psycopg (or psycopg2,
sqlite3, PyMySQL) makes two sibling spans: the SQLAlchemy instrumentor's and the DB-API
driver instrumentor's (SQLAlchemy's span is not current while the cursor executes, so
the driver span is not even its child).  That doubles the per-query tracing cost and
double-counts DB time.

Usage (the agent calls it after the instrumentors are loaded)::

    undo = install_db_dedupe()

A ``do_connect`` listener on every SQLAlchemy ``Engine`` opens the connection with the
driver's *original* ``connect`` (the un-wrapped function behind the instrumentor's
wrapper), so connections owned by SQLAlchemy are traced by the SQLAlchemy instrumentor
only.  Code that uses the driver directly keeps the driver instrumentor's spans.
Dialects whose connect is not a wrapped driver function (asyncpg, psycopg async) are left
alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)


def _original_connect(dialect):
    dbapi = getattr(dialect, "loaded_dbapi", None) or getattr(dialect, "dbapi", None)
    connect = getattr(dbapi, "connect", None)
    original = getattr(connect, "__wrapped__", None)
    return original if callable(original) else None


def install_db_dedupe() -> Callable[[], None] | None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:
        return None

    def do_connect(dialect, conn_rec, cargs, cparams):
        try:
            original = _original_connect(dialect)
        except Exception:
            original = None
        if original is None or type(dialect).connect is not _default_connect():
            return None  # let SQLAlchemy connect as usual
        return original(*cargs, **cparams)

    event.listen(Engine, "do_connect", do_connect)
    return lambda: event.remove(Engine, "do_connect", do_connect)


def _default_connect():
    from sqlalchemy.engine.default import DefaultDialect

    return DefaultDialect.connect
