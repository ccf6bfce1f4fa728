"""sqlite3: ``conn.execute()`` / ``conn.executemany()`` traced like cursor statements
(:mod:`chokepoint.instrument.sqlite_shortcuts`), after the upstream sqlite3 instrumentor.

Plan row ``sqlite3``; entry point ``chokepoint_sqlite3``
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_sqlite3`` leaves upstream's proxy as it is).
"""

from __future__ import annotations

from chokepoint.instrument.integrations.fixup import Fixup


class Sqlite3Fixups(Fixup):
    library = "sqlite3"
    upstream = "opentelemetry.instrumentation.sqlite3:SQLite3Instrumentor"

    def fix(self, run_upstream):
        from chokepoint.instrument.sqlite_shortcuts import install_sqlite3_shortcuts

        yield install_sqlite3_shortcuts()
