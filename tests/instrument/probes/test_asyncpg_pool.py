"""asyncpg pool probe against real PostgreSQL: more tasks than connections, fast queries.

Ground truth from outside the probe: each task's own timing of ``pool.acquire()``, and
PostgreSQL's own ``pg_stat_activity`` for the connections in use.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from chokepoint.instrument import context, signals
from chokepoint.instrument.probes.asyncpg_pool import AsyncpgPoolProbe, asyncpg_pool_name

POOL = signals.ATTR_DB_POOL_NAME


def test_pool_names_carry_no_credentials():
    assert asyncpg_pool_name(("postgresql://alice:s3cret@db.internal:5433/shop?sslmode=require",), {}) == "asyncpg://db.internal:5433/shop"
    assert asyncpg_pool_name((), {"host": "10.0.0.2", "port": 5432, "database": "orders", "password": "x"}) == "asyncpg://10.0.0.2:5432/orders"
    assert asyncpg_pool_name((), {}) == "asyncpg://"


def test_an_exhausted_pool_reports_waits_waiters_and_timeouts(metrics, installed, postgres):
    installed.append(AsyncpgPoolProbe(metrics.meter))
    name = f"asyncpg://127.0.0.1:{postgres.port}/{postgres.dbname}"
    own_waits: list[float] = []
    request_waits: list[float] = []

    async def main():
        pool = await asyncpg.create_pool(postgres.dsn, min_size=2, max_size=2)
        watcher = await asyncpg.connect(postgres.dsn)
        try:
            got = metrics.collect()
            assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: name}, got) == 2
            assert metrics.value(signals.DB_POOL_IDLE_MAX, {POOL: name}, got) == 2
            release = asyncio.Event()

            async def request(hold: bool):
                token = context.start_request("/orders")
                try:
                    t0 = time.perf_counter()
                    conn = await pool.acquire()
                    own_waits.append(time.perf_counter() - t0)
                    try:
                        await conn.fetchval("select 1")
                        if hold:
                            await release.wait()
                        else:
                            await asyncio.sleep(0.02)
                    finally:
                        await pool.release(conn)
                finally:
                    ctx = context.end_request(token)
                    request_waits.append(ctx.component_seconds.get("pool_wait", 0.0))

            holders = [asyncio.create_task(request(True)) for _ in range(2)]
            while pool.get_idle_size():
                await asyncio.sleep(0.01)
            waiters = [asyncio.create_task(request(False)) for _ in range(6)]
            await asyncio.sleep(0.2)
            got = metrics.collect()
            in_use = await watcher.fetchval(
                "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'"
            )
            pending = metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got)
            used = metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got)
            with pytest.raises(asyncio.TimeoutError):
                await pool.acquire(timeout=0.05)
            release.set()
            await asyncio.gather(*holders, *waiters)
            return pending, used, in_use
        finally:
            await watcher.close()
            await pool.close()

    pending, used, in_use = asyncio.run(main())
    assert pending == 6  # the six tasks waiting in acquire
    assert used == 2 and in_use == 2  # PostgreSQL sees the pool's two sessions
    got = metrics.collect()
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    assert wait.count == 9  # 8 acquires + the one that timed out
    timed_out_wait = wait.sum - sum(own_waits)
    assert 0.04 <= timed_out_wait <= 0.5  # the 0.05 s timeout, plus the loop's own delay
    assert sum(own_waits) > 6 * 0.15  # the waiters really waited for the holders
    assert metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: name}, got) == 1
    assert metrics.point(signals.DB_POOL_USE_TIME, {POOL: name}, got).count == 8
    # every task's pool_wait is its own measured wait (the probe's interval lies inside the task's)
    for own, seen in zip(sorted(own_waits), sorted(request_waits), strict=True):
        assert seen <= own + 1e-6 and own - seen < 0.01
    assert metrics.points(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got) == []  # closed pools leave the gauges


def test_uninstall_restores_the_pool_methods(metrics, postgres):
    original = asyncpg.pool.Pool._acquire
    probe = AsyncpgPoolProbe(metrics.meter)
    assert asyncpg.pool.Pool._acquire is not original
    probe.uninstall()
    assert asyncpg.pool.Pool._acquire is original

    async def main():
        async with asyncpg.create_pool(postgres.dsn, min_size=1, max_size=1) as pool:
            return await pool.fetchval("select 41 + 1")

    assert asyncio.run(main()) == 42
    assert metrics.points(signals.DB_POOL_WAIT_TIME, None, metrics.collect()) == []
