"""The lean SQLAlchemy hot path makes the spans the upstream instrumentor makes (real PostgreSQL)."""

import pytest
import sqlalchemy as sa
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument.sqlalchemy_lean import install_lean_sqlalchemy


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    yield provider, exporter
    instrumentor.uninstrument()


def workload(url: str, provider) -> None:
    engine = sa.create_engine(url, pool_size=2)
    with provider.get_tracer("test").start_as_current_span("request"), engine.connect() as conn:
        for n in range(3):
            conn.execute(sa.text("SELECT :n + 1"), {"n": n}).scalar()
        conn.execute(sa.text("SELECT 1")).scalar()
        with pytest.raises(sa.exc.ProgrammingError):
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    with pytest.raises(sa.exc.OperationalError):  # refused: the connect span records it
        sa.create_engine(url.replace(f":{engine.url.port}/", ":9/"), pool_size=1).connect()
    engine.dispose()


def shapes(exporter) -> list:
    by_id = {span.context.span_id: span.name for span in exporter.get_finished_spans()}
    return [
        (
            span.name,
            span.kind,
            list(span.attributes.items()),
            span.status.status_code,
            span.status.description,
            [(e.name, e.attributes.get("exception.type")) for e in span.events],
            by_id.get(span.parent.span_id) if span.parent else None,
        )
        for span in exporter.get_finished_spans()
    ]


def test_lean_path_makes_the_upstream_spans(postgres, traced):
    provider, exporter = traced
    workload(postgres.url, provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy()
    assert undo is not None
    try:
        workload(postgres.url, provider)
        lean = shapes(exporter)
    finally:
        undo()
    db = sa.make_url(postgres.url).database
    assert [s[0] for s in upstream] == ["connect", "SELECT " + db, "SELECT " + db, "SELECT " + db, "SELECT " + db, "SELECT " + db, "request", "connect"]
    assert lean == upstream
    statements = [dict(s[2]).get("db.query.text") or dict(s[2]).get("db.statement") for s in lean[1:6]]
    assert statements == ["SELECT %(n)s + 1"] * 3 + ["SELECT 1", "SELECT * FROM no_such_table"]


def test_undo_restores_the_upstream_instrumentor(traced):
    before = EngineTracer.__dict__["_before_cur_exec"], sa.engine.base.Engine.__dict__["connect"]
    undo = install_lean_sqlalchemy()
    assert EngineTracer.__dict__["_before_cur_exec"] is not before[0]
    assert install_lean_sqlalchemy() is None  # once
    undo()
    assert (EngineTracer.__dict__["_before_cur_exec"], sa.engine.base.Engine.__dict__["connect"]) == before


def test_pool_listeners_skipped_only_when_their_counter_is_a_noop(postgres, traced):
    undo = install_lean_sqlalchemy()
    try:
        engine = sa.create_engine(postgres.url)
        assert not sa.event.contains(engine, "checkout", engine_tracer(engine)._pool_checkout)
        assert sa.event.contains(engine, "before_cursor_execute", engine_tracer(engine)._before_cur_exec)
        engine.dispose()
    finally:
        undo()


def engine_tracer(engine) -> EngineTracer:
    for ref, identifier, func in EngineTracer._remove_event_listener_params:
        if ref() is engine and identifier == "before_cursor_execute":
            return func.__self__
    raise AssertionError("engine not traced")


def two_database_workload(url: str, other_db: str, provider) -> None:
    """One engine whose DB-API connections alternate between two databases (``do_connect``
    picks the database), re-opened after a dispose: each span must name its connection's."""
    engine = sa.create_engine(url, pool_size=2)
    databases = [other_db, sa.make_url(url).database]

    @sa.event.listens_for(engine, "do_connect")
    def pick_database(dialect, record, cargs, cparams):
        databases.reverse()
        cparams["dbname"] = databases[0]

    with provider.get_tracer("test").start_as_current_span("request"):
        for _ in range(2):
            with engine.connect() as first, engine.connect() as second:
                for conn in (first, second, first, second):
                    conn.execute(sa.text("SELECT current_database()")).scalar()
            engine.dispose()


def test_lean_path_names_each_statement_by_its_connections_database(postgres, traced):
    import psycopg

    with psycopg.connect(postgres.dsn, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'lean_other'").fetchone() is None:
            admin.execute("CREATE DATABASE lean_other")
    provider, exporter = traced
    two_database_workload(postgres.url, "lean_other", provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy()
    try:
        two_database_workload(postgres.url, "lean_other", provider)
        lean = shapes(exporter)
    finally:
        undo()
    assert lean == upstream
    db = sa.make_url(postgres.url).database
    names = [s[0] for s in lean if s[0].startswith("SELECT")]
    assert names == ["SELECT " + db, "SELECT lean_other"] * 4 or names == ["SELECT lean_other", "SELECT " + db] * 4


def suppressed_workload(url: str, provider) -> None:
    """Statements and a connect with instrumentation suppressed (both keys), between traced ones."""
    from opentelemetry import context
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    engine = sa.create_engine(url, pool_size=1)
    with provider.get_tracer("test").start_as_current_span("request"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
            with suppress_instrumentation():
                conn.execute(sa.text("SELECT 2")).scalar()
            token = context.attach(context.set_value("suppress_instrumentation", True))  # the plain-string key
            try:
                conn.execute(sa.text("SELECT 3")).scalar()
            finally:
                context.detach(token)
            conn.execute(sa.text("SELECT 4")).scalar()
        with suppress_instrumentation(), engine.connect() as conn:
            conn.execute(sa.text("SELECT 5")).scalar()
    engine.dispose()


def test_lean_path_respects_suppressed_instrumentation_as_upstream(postgres, traced):
    provider, exporter = traced
    suppressed_workload(postgres.url, provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy()
    try:
        suppressed_workload(postgres.url, provider)
        lean = shapes(exporter)
    finally:
        undo()
    assert lean == upstream
    statements = [dict(s[2]).get("db.query.text") or dict(s[2]).get("db.statement") for s in lean if s[0].startswith("SELECT")]
    assert statements == ["SELECT 1", "SELECT 4"] and [s[0] for s in lean].count("connect") == 1
