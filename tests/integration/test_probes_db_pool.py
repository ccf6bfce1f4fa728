"""DB pool probes against real PostgreSQL: more threads than connections → waits and waiters."""

from __future__ import annotations

import threading
import time

import psycopg_pool
import sqlalchemy as sa

from chokepoint.instrument import signals
from chokepoint.instrument.probes.db_pool import PsycopgPoolProbe, SQLAlchemyPoolProbe
from tests.instrument.probes.points import Metrics

POOL = signals.ATTR_DB_POOL_NAME


def _run_while_sampling(targets, sample):
    """Start the threads, call ``sample()`` until they finish, return the samples."""
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    samples = []
    while any(t.is_alive() for t in threads):
        samples.append(sample())
        time.sleep(0.02)
    for t in threads:
        t.join()
    return samples


def test_sqlalchemy_queuepool_size_2_with_8_threads(postgres):
    metrics = Metrics()
    probe = SQLAlchemyPoolProbe(metrics.meter)
    try:
        engine = sa.create_engine(postgres.url, pool_size=2, max_overflow=0, pool_timeout=30)
        name = f"{engine.url.drivername}://{engine.url.host}:{engine.url.port}/{engine.url.database}"

        def hold():
            with engine.connect() as conn:
                conn.execute(sa.text("select pg_sleep(0.15)"))

        def sample():
            got = metrics.collect()
            return (
                metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got)
                if metrics.points(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got)
                else 0,
                metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got)
                if metrics.points(signals.DB_POOL_CONNECTION_COUNT, {POOL: name}, got)
                else 0,
            )

        samples = _run_while_sampling([hold] * 8, sample)
        got = metrics.collect()
        assert max(p for p, _ in samples) >= 4  # at least half the threads queued at once
        assert max(u for _, u in samples) == 2
        assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: name}, got) == 2
        wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
        assert wait.count == 8
        assert wait.max >= 0.3  # the last of 8 threads waited for 3 rounds of 0.15 s holds
        use = metrics.point(signals.DB_POOL_USE_TIME, {POOL: name}, got)
        assert use.count == 8 and use.min >= 0.15
        assert metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got) == 0
        engine.dispose()
    finally:
        probe.uninstall()
        metrics.close()


def test_psycopg_pool_stats_and_waits(postgres):
    metrics = Metrics()
    probe = PsycopgPoolProbe(metrics.meter)
    try:
        with psycopg_pool.ConnectionPool(postgres.dsn, min_size=1, max_size=2, name="orders-db", open=True) as pool:
            pool.wait(10)

            def hold():
                with pool.connection() as conn:
                    conn.execute("select pg_sleep(0.15)")

            def sample():
                got = metrics.collect()
                return (
                    metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: "orders-db"}, got),
                    metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: "orders-db", signals.ATTR_DB_POOL_STATE: "used"}, got),
                )

            samples = _run_while_sampling([hold] * 6, sample)
            got = metrics.collect()
            assert max(p for p, _ in samples) >= 2
            assert max(u for _, u in samples) == 2
            assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: "orders-db"}, got) == 2
            assert metrics.value(signals.DB_POOL_IDLE_MAX, {POOL: "orders-db"}, got) == 1
            wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: "orders-db"}, got)
            assert wait.count == 6 and wait.max >= 0.15
            assert metrics.point(signals.DB_POOL_USE_TIME, {POOL: "orders-db"}, got).count == 6
            try:
                with pool.connection(), pool.connection(), pool.connection(timeout=0.1):
                    raise AssertionError("a third connection from a pool of 2")
            except psycopg_pool.PoolTimeout:
                pass
            assert metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: "orders-db"}) == 1
    finally:
        probe.uninstall()
        metrics.close()


def test_psycopg_async_pool_waits(postgres):
    import asyncio

    metrics = Metrics()
    probe = PsycopgPoolProbe(metrics.meter)

    async def main():
        async with psycopg_pool.AsyncConnectionPool(postgres.dsn, min_size=1, max_size=1, name="async-db", open=False) as pool:
            await pool.wait(10)

            async def hold():
                async with pool.connection() as conn:
                    await conn.execute("select pg_sleep(0.1)")

            tasks = [asyncio.create_task(hold()) for _ in range(3)]
            await asyncio.sleep(0.05)
            during = metrics.collect()
            await asyncio.gather(*tasks)
            return during

    try:
        during = asyncio.run(main())
        assert metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: "async-db"}, during) == 2
        assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: "async-db", signals.ATTR_DB_POOL_STATE: "used"}, during) == 1
        got = metrics.collect()
        wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: "async-db"}, got)
        assert wait.count == 3 and wait.max >= 0.15  # the third task waited for two holds
        assert metrics.point(signals.DB_POOL_USE_TIME, {POOL: "async-db"}, got).count == 3
    finally:
        probe.uninstall()
        metrics.close()


def test_sqlalchemy_async_engine_pool_waits(postgres):
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    metrics = Metrics()
    probe = SQLAlchemyPoolProbe(metrics.meter)

    async def main():
        engine = create_async_engine(postgres.url, pool_size=1, max_overflow=0, pool_timeout=30)
        name = f"{engine.url.drivername}://{engine.url.host}:{engine.url.port}/{engine.url.database}"

        async def hold():
            async with engine.connect() as conn:
                await conn.execute(sa.text("select pg_sleep(0.1)"))

        async with engine.connect():
            pass  # the pool's one connection exists: the tasks below only wait, none connects
        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.sleep(0.05)
        during = metrics.collect()
        await asyncio.gather(*tasks)
        await engine.dispose()
        return name, during

    try:
        name, during = asyncio.run(main())
        assert metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, during) == 2
        assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, during) == 1
        wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name})
        assert wait.count == 4 and wait.max >= 0.15
    finally:
        probe.uninstall()
        metrics.close()
