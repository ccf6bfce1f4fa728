import sqlite3

import pytest
from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument.sqlite_shortcuts import install_sqlite3_shortcuts


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    undo = install_sqlite3_shortcuts()
    assert undo is not None and install_sqlite3_shortcuts() is None  # idempotent
    try:
        conn = SQLite3Instrumentor.instrument_connection(sqlite3.connect(":memory:"), tracer_provider=provider)
        yield conn, exporter
        conn.close()
    finally:
        undo()


def statements(exporter):
    # old or stable attribute name, whichever semconv mode this test process settled on
    return [span.attributes.get("db.query.text") or span.attributes.get("db.statement") for span in exporter.get_finished_spans()]


def test_connection_shortcuts_make_spans_and_return_a_traced_cursor(traced):
    conn, exporter = traced
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (id, body) VALUES (?, ?)", [(1, "a"), (2, "b")])
    cursor = conn.execute("SELECT body FROM notes WHERE id > ? ORDER BY id", (0,))
    assert [row for row in cursor] == [("a",), ("b",)]  # what sqlite3's own shortcut returns
    cursor.execute("SELECT count(*) FROM notes")  # the returned cursor is traced too
    assert cursor.fetchone() == (2,)
    with conn:  # the connection context manager still commits
        conn.execute("DELETE FROM notes WHERE id = ?", (2,))
    assert statements(exporter) == [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO notes (id, body) VALUES (?, ?)",
        "SELECT body FROM notes WHERE id > ? ORDER BY id",
        "SELECT count(*) FROM notes",
        "DELETE FROM notes WHERE id = ?",
    ]


def test_errors_reach_the_caller_and_other_drivers_keep_the_upstream_proxy(traced):
    conn, exporter = traced
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("SELECT * FROM missing")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code.name == "ERROR"

    class OtherConnection:
        def cursor(self):
            return None

    proxy = dbapi.get_traced_connection_proxy(OtherConnection(), None)
    assert type(proxy) is dbapi.TracedConnectionProxy and not hasattr(proxy, "execute")


def test_undo_restores_the_upstream_proxy():
    original = dbapi.get_traced_connection_proxy
    undo = install_sqlite3_shortcuts()
    assert dbapi.get_traced_connection_proxy is not original
    undo()
    assert dbapi.get_traced_connection_proxy is original
