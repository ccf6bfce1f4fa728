"""SQLAlchemy's async adapter cursors run with instrumentation suppressed while SQLAlchemy is traced."""

from types import SimpleNamespace

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_cursor
from sqlalchemy.dialects.postgresql.psycopg import AsyncAdapt_psycopg_cursor

from chokepoint.instrument.sqlalchemy_async_dedupe import install_sqlalchemy_async_dedupe


class AdapterCursor:
    """What ``AsyncAdapt_asyncpg_cursor.execute`` uses of itself: the driver call it awaits."""

    def __init__(self):
        self.driver_saw_instrumentation = []
        self._adapt_connection = SimpleNamespace(await_=self._run)

    @staticmethod
    def _run(coroutine):
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("the fake driver call does not suspend")

    async def _prepare_and_execute(self, operation, parameters):
        self.driver_saw_instrumentation.append(is_instrumentation_enabled())


def test_driver_spans_suppressed_only_while_sqlalchemy_is_instrumented():
    originals = {cls: dict(cls.__dict__) for cls in (AsyncAdapt_asyncpg_cursor, AsyncAdapt_psycopg_cursor)}
    undo = install_sqlalchemy_async_dedupe()
    assert undo is not None and install_sqlalchemy_async_dedupe() is None  # once
    instrumentor = SQLAlchemyInstrumentor()  # a singleton; its flag is flipped here, not the real instrumentation
    was_instrumented = instrumentor._is_instrumented_by_opentelemetry
    cursor = AdapterCursor()
    try:
        instrumentor._is_instrumented_by_opentelemetry = False
        AsyncAdapt_asyncpg_cursor.execute(cursor, "SELECT 1")
        instrumentor._is_instrumented_by_opentelemetry = True
        AsyncAdapt_asyncpg_cursor.execute(cursor, "SELECT 1")
    finally:
        instrumentor._is_instrumented_by_opentelemetry = was_instrumented
        undo()
    assert cursor.driver_saw_instrumentation == [True, False]  # suppressed only under SQLAlchemy's tracing
    assert is_instrumentation_enabled()  # and restored after the call
    for cls, namespace in originals.items():
        assert cls.__dict__["execute"] is namespace["execute"] and cls.__dict__["executemany"] is namespace["executemany"]


LAZY = """
import asyncio, sys
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
SQLAlchemyInstrumentor().instrument(tracer_provider=TracerProvider(), meter_provider=NoOpMeterProvider())
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
