"""One span per SQL statement under SQLAlchemy's asyncio engines (asyncpg, psycopg async).

With stock auto-instrumentation, a query through ``create_async_engine`` over asyncpg or
psycopg 3 (async) makes two spans: the SQLAlchemy instrumentor's and the driver
instrumentor's, siblings with the same statement.  That doubles the query's DB time in
the request breakdown, its ``db.client.operation.duration`` count and the DB queries per
request.  (Sync engines are handled by :mod:`chokepoint.instrument.db_dedupe`, which
opens their connections with the un-wrapped driver; async drivers are instrumented on
their connection classes, so that cannot work for them.)

Usage (the ``chokepoint_sqlalchemy_dedupe`` integration calls it after the SQLAlchemy
instrumentor, :mod:`chokepoint.instrument.integrations.sqlalchemy_dedupe`)::

    undo = install_sqlalchemy_async_dedupe()

SQLAlchemy's async adapter cursors (``AsyncAdapt_asyncpg_cursor``,
``AsyncAdapt_psycopg_cursor`` and their server-side variants; patched when their dialect
module is loaded and a pool opens a connection — a pool ``connect`` listener, once per
new DB-API connection, nothing per statement — so sync-only apps import nothing more) run ``execute`` /
``executemany`` with OpenTelemetry instrumentation suppressed, so only SQLAlchemy's span
— already open around the call, and covering the same round trips — remains.  Only
while the SQLAlchemy instrumentor is active: with it disabled
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy``) the driver spans stay.  Code using
asyncpg or psycopg directly is not affected.  If the adapter classes are missing
(another SQLAlchemy version), nothing is patched.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

_log = logging.getLogger(__name__)
_MARK = "_chokepoint_async_dedupe"
_installed = False

TARGETS = (
    ("sqlalchemy.dialects.postgresql.asyncpg", ("AsyncAdapt_asyncpg_cursor", "AsyncAdapt_asyncpg_ss_cursor")),
    ("sqlalchemy.dialects.postgresql.psycopg", ("AsyncAdapt_psycopg_cursor", "AsyncAdapt_psycopg_ss_cursor")),
)
METHODS = ("execute", "executemany")


def install_sqlalchemy_async_dedupe() -> Callable[[], None] | None:
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from sqlalchemy import event
        from sqlalchemy.pool import Pool
    except ImportError:
        return None
    global _installed
    if _installed:
        return None
    _installed = True
    instrumentor = SQLAlchemyInstrumentor()  # a singleton: its "instrumented" flag is read per call
    patched: list[tuple[type, str, Callable]] = []

    def suppressed(original):
        def method(self, *args, **kwargs):
            if not instrumentor.is_instrumented_by_opentelemetry:
                return original(self, *args, **kwargs)
            token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                return original(self, *args, **kwargs)
            finally:
                otel_context.detach(token)

        setattr(method, _MARK, True)
        method.__doc__ = original.__doc__
        return method

    def patch_loaded_adapters() -> None:
        # only dialect modules already imported: importing them all up front costs ~0.1 s of start-up
        for module_name, class_names in TARGETS:
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for class_name in class_names:
                cls = getattr(module, class_name, None)
                if cls is None:
                    _log.debug("chokepoint: %s.%s missing; its statements may be traced twice", module_name, class_name)
                    continue
                for name in METHODS:  # inherited too (2.1's adapters share a base cursor's methods)
                    original = getattr(cls, name, None)
                    if original is not None and not getattr(original, _MARK, False):
                        patched.append((cls, name, cls.__dict__.get(name)))  # None: inherited
                        setattr(cls, name, suppressed(original))

    def on_connect(dbapi_connection, connection_record):
        # an engine's dialect is loaded by the time its pool opens a connection, before the
        # dialect's own first queries and the application's statements
        if not patched_all():
            try:
                patch_loaded_adapters()
            except Exception:
                _log.debug("chokepoint: SQLAlchemy async dedupe failed", exc_info=True)

    def patched_all() -> bool:
        return all(
            getattr(getattr(getattr(sys.modules.get(module_name), class_name, None), name, None), _MARK, False)
            for module_name, class_names in TARGETS
            for class_name in class_names
            for name in METHODS
        )

    patch_loaded_adapters()
    event.listen(Pool, "connect", on_connect)

    def undo() -> None:
        global _installed
        _installed = False
        event.remove(Pool, "connect", on_connect)
        for cls, name, original in reversed(patched):
            if original is None:
                cls.__dict__.get(name) is not None and delattr(cls, name)
            else:
                setattr(cls, name, original)
        patched.clear()

    return undo
