"""SQLAlchemy: one span per statement, not SQLAlchemy's and the driver's, after the upstream
SQLAlchemy instrumentor (on chokepoint's own SQLAlchemy path too, which runs over it).

Sync engines open their DB-API connections with the un-wrapped driver ``connect``
(:mod:`chokepoint.instrument.db_dedupe`); asyncio engines over asyncpg / psycopg run their
adapter cursors with instrumentation suppressed
(:mod:`chokepoint.instrument.sqlalchemy_async_dedupe`).  Both act only while the SQLAlchemy
instrumentor is on.  Plan row ``sqlalchemy``; entry point ``chokepoint_sqlalchemy_dedupe``
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_sqlalchemy_dedupe`` keeps both spans).
"""

from __future__ import annotations

from chokepoint.instrument.integrations.fixup import Fixup


class SqlalchemyDedupe(Fixup):
    library = "sqlalchemy"
    upstream = "opentelemetry.instrumentation.sqlalchemy:SQLAlchemyInstrumentor"
    _instruments = ("sqlalchemy >= 1.4",)

    def fix(self, run_upstream):
        from chokepoint.instrument.db_dedupe import install_db_dedupe
        from chokepoint.instrument.sqlalchemy_async_dedupe import install_sqlalchemy_async_dedupe

        yield install_sqlalchemy_async_dedupe()
        yield install_db_dedupe()
