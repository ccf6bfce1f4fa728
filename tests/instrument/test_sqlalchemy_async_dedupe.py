"""SQLAlchemy's async adapter cursors run with instrumentation suppressed while SQLAlchemy is traced (real PostgreSQL, asyncpg and psycopg async)."""

import asyncio

import sqlalchemy as sa
import sqlalchemy.ext.asyncio
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_cursor
from sqlalchemy.dialects.postgresql.psycopg import AsyncAdapt_psycopg_cursor

from chokepoint.instrument.sqlalchemy_async_dedupe import install_sqlalchemy_async_dedupe

SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


def statement_scopes(postgres, exporter) -> list[str]:
    """Run ``SELECT 40 + 2`` through an async engine on asyncpg, then psycopg; the
    instrumentation scopes of the spans carrying that statement."""

    async def run(driver: str) -> None:
        engine = sqlalchemy.ext.asyncio.create_async_engine(  # read when called: the instrumentor wraps it
            postgres.url.replace("postgresql+psycopg://", f"postgresql+{driver}://"), pool_size=1
        )
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 40 + 2"))).scalar() == 42
        await engine.dispose()

    exporter.clear()
    for driver in ("asyncpg", "psycopg"):
        asyncio.run(run(driver))
    spans = exporter.get_finished_spans()
    return [s.instrumentation_scope.name for s in spans if s.attributes.get("db.query.text", s.attributes.get("db.statement")) == "SELECT 40 + 2"]


def test_driver_spans_suppressed_only_while_sqlalchemy_is_instrumented(postgres):
    originals = {cls: dict(cls.__dict__) for cls in (AsyncAdapt_asyncpg_cursor, AsyncAdapt_psycopg_cursor)}
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentors = [AsyncPGInstrumentor(), PsycopgInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    undo = install_sqlalchemy_async_dedupe()
    try:
        assert undo is not None and install_sqlalchemy_async_dedupe() is None  # once
        assert statement_scopes(postgres, exporter) == [SQLALCHEMY_SCOPE] * 2  # one span per statement: SQLAlchemy's
        SQLAlchemyInstrumentor().uninstrument()
        assert statement_scopes(postgres, exporter) == ["opentelemetry.instrumentation.asyncpg", "opentelemetry.instrumentation.psycopg"]
        assert is_instrumentation_enabled()  # restored after the calls
    finally:
        undo()
        SQLAlchemyInstrumentor().uninstrument()
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    for cls, namespace in originals.items():
        assert all(cls.__dict__.get(name) is namespace.get(name) for name in ("execute", "executemany"))


LAZY = """
import asyncio, sys
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
SQLAlchemyInstrumentor().instrument(tracer_provider=TracerProvider(), meter_provider=NoOpMeterProvider(), skip_dep_check=True)
from chokepoint.instrument.sqlalchemy_async_dedupe import install_sqlalchemy_async_dedupe
assert "sqlalchemy.dialects.postgresql.asyncpg" not in sys.modules
install_sqlalchemy_async_dedupe()
import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import create_async_engine
async def main():
    engine = create_async_engine(sys.argv[1])
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT 41 + 1"))).scalar() == 42
    await engine.dispose()
asyncio.run(main())
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_cursor
print(getattr(AsyncAdapt_asyncpg_cursor.execute, "_chokepoint_async_dedupe", False), Dialect._has_events)
"""


def test_adapters_loaded_after_install_are_patched_when_a_pool_connects(postgres):
    """An app importing its async dialect after the agent: patched by the time the pool's first
    connection is open, without a dialect-level listener (which would make SQLAlchemy walk the
    dialect's event lists on every statement)."""
    import subprocess
    import sys

    url = postgres.url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
    done = subprocess.run([sys.executable, "-c", LAZY, url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
