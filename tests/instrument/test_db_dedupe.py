"""One span per statement for SQLAlchemy over the instrumented psycopg driver (real PostgreSQL)."""

import psycopg
import pytest
import sqlalchemy as sa
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine.default import DefaultDialect

from chokepoint.instrument.db_dedupe import install_db_dedupe


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sqlalchemy_instrumentor, psycopg_instrumentor = SQLAlchemyInstrumentor(), PsycopgInstrumentor()
    sqlalchemy_instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    psycopg_instrumentor.instrument(tracer_provider=provider)
    undo = install_db_dedupe()
    assert undo is not None
    exporter.provider = provider
    yield exporter
    undo()
    psycopg_instrumentor.uninstrument()
    sqlalchemy_instrumentor.uninstrument()


def test_sqlalchemy_statements_make_one_span_and_direct_driver_use_keeps_its_own(postgres, traced):
    engine = sa.create_engine(postgres.url, pool_size=1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 40 + 2")).scalar() == 42
    engine.dispose()
    names = [s.name for s in traced.get_finished_spans()]
    assert names.count("connect") == 1 and len([n for n in names if n.startswith("SELECT")]) == 1
    traced.clear()
    with psycopg.connect(postgres.dsn) as direct:
        assert direct.execute("SELECT 1").fetchone() == (1,)
    assert [s.name for s in traced.get_finished_spans() if s.name.startswith("SELECT")] == ["SELECT"]


def test_driver_spans_stay_while_sqlalchemy_is_not_instrumented(postgres, traced):
    """With the SQLAlchemy instrumentor off (disabled, or skipped for its version) the driver's
    spans are the only ones: the engine's connections keep the wrapped driver ``connect``."""
    SQLAlchemyInstrumentor().uninstrument()
    try:
        engine = sa.create_engine(postgres.url, pool_size=1)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 40 + 2")).scalar() == 42
        engine.dispose()
    finally:
        SQLAlchemyInstrumentor().instrument(tracer_provider=traced.provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    statements = [s for s in traced.get_finished_spans() if s.attributes.get("db.query.text", s.attributes.get("db.statement")) == "SELECT 40 + 2"]
    assert [s.instrumentation_scope.name for s in statements] == ["opentelemetry.instrumentation.psycopg"]


def test_the_applications_do_connect_listeners_still_run(postgres, traced):
    """``do_connect`` listeners set per-connection credentials (tokens): they must run, and
    the connection must be opened with what they set."""
    url = sa.make_url(postgres.url)
    engine = sa.create_engine(url.set(host="127.0.0.1", port=9, database="nowhere"), pool_size=1)
    calls = []

    @sa.event.listens_for(engine, "do_connect")
    def credentials(dialect, record, cargs, cparams):
        calls.append(dict(cparams))
        cparams.update(host=url.host, port=url.port, dbname=url.database)

    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == url.database
    engine.dispose()
    assert len(calls) == 1 and calls[0]["port"] == 9
    assert len([s for s in traced.get_finished_spans() if s.name.startswith("SELECT")]) == 1


def test_undo_restores_the_dialect_and_is_installed_once(traced):
    wrapped = DefaultDialect.__dict__["connect"]
    assert wrapped.__wrapped__ is not wrapped
    assert install_db_dedupe() is None  # once
