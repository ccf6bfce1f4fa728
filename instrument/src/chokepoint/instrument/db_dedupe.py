"""One span per SQL statement when SQLAlchemy runs over an instrumented DB-API driver.

With stock auto-instrumentation, a query through SQLAlchemy on psycopg (or psycopg2,
sqlite3, PyMySQL) makes two sibling spans: the SQLAlchemy instrumentor's and the DB-API
driver instrumentor's (SQLAlchemy's span is not current while the cursor executes, so
the driver span is not even its child).  That doubles the per-query tracing cost and
double-counts DB time.

Usage (the ``chokepoint_sqlalchemy_dedupe`` integration calls it after the SQLAlchemy
instrumentor, :mod:`chokepoint.instrument.integrations.sqlalchemy_dedupe`)::

    undo = install_db_dedupe()

SQLAlchemy's ``DefaultDialect.connect`` (what every engine calls to open a DB-API
connection, after the engine's ``do_connect`` listeners) opens it with the driver's
*original* ``connect`` (the un-wrapped function behind the instrumentor's wrapper), so
connections owned by SQLAlchemy are traced by the SQLAlchemy instrumentor only — and only
while that instrumentor is on: with it off (disabled, skipped by ``opentelemetry-instrument``
for a SQLAlchemy outside its declared range, or uninstrumented) connections are opened with
the wrapped driver ``connect`` and the driver's spans stay, so statements are never left
without a span.  Code that uses the driver directly keeps the driver instrumentor's spans.  Dialects whose
driver ``connect`` is not a wrapped function (asyncpg, psycopg async) are left alone.

Cost: one Python call per new pooled connection, nothing per statement.  (It used to be
a ``do_connect`` listener on ``Engine``: that ran before the application's own
``do_connect`` listeners and returned the connection, so theirs — setting a password
or token per connection — never ran; and any ``do_connect`` listener makes SQLAlchemy
walk the dialect's event lists on every statement.)
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
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from sqlalchemy.engine.default import DefaultDialect
    except ImportError:  # no SQLAlchemy spans can exist: the driver spans are the only ones
        return None
    instrumentor = SQLAlchemyInstrumentor()  # a singleton: its "instrumented" flag is read per new connection
    default_connect = DefaultDialect.__dict__.get("connect")
    if default_connect is None or getattr(default_connect, "_chokepoint", False):
        return None

    def connect(self, *cargs, **cparams):
        try:
            original = _original_connect(self) if instrumentor.is_instrumented_by_opentelemetry else None
        except Exception:
            original = None
        if original is None:
            return default_connect(self, *cargs, **cparams)
        return original(*cargs, **cparams)

    connect._chokepoint = True
    connect.__wrapped__ = default_connect
    connect.__doc__ = default_connect.__doc__
    DefaultDialect.connect = connect

    def undo() -> None:
        if DefaultDialect.__dict__.get("connect") is connect:
            DefaultDialect.connect = default_connect

    return undo
