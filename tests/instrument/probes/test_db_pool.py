"""SQLAlchemy QueuePool probe against a real SQLite file pool (PostgreSQL is in tests/integration)."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from chokepoint.instrument import context, signals
from chokepoint.instrument.probes.db_pool import SQLAlchemyPoolProbe, _url_name

POOL = signals.ATTR_DB_POOL_NAME


@pytest.fixture
def engine_and_probe(metrics, installed, tmp_path):
    probe = SQLAlchemyPoolProbe(metrics.meter)
    installed.append(probe)
    engine = sa.create_engine(f"sqlite:///{tmp_path}/db.sqlite", poolclass=QueuePool, pool_size=1, max_overflow=1, pool_timeout=0.2)
    yield engine, probe, _url_name(engine.url)
    engine.dispose()


def _wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_url_name_drops_credentials_and_query():
    url = make_url("postgresql+psycopg://alice:s3cret@db.internal:5433/shop?sslmode=require")
    assert _url_name(url) == "postgresql+psycopg://db.internal:5433/shop"


def test_gauges_count_used_idle_max_overflow(metrics, engine_and_probe):
    engine, _, name = engine_and_probe
    with engine.connect(), engine.connect():  # pool_size 1 + 1 overflow
        got = metrics.collect()
        assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got) == 2
        assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "idle"}, got) == 0
        assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: name}, got) == 2
        assert metrics.value(signals.DB_POOL_IDLE_MAX, {POOL: name}, got) == 1
        assert metrics.value(signals.DB_POOL_OVERFLOW, {POOL: name}, got) == 1
    got = metrics.collect()
    assert metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: name, signals.ATTR_DB_POOL_STATE: "used"}, got) == 0
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    assert wait.count == 2
    use = metrics.point(signals.DB_POOL_USE_TIME, {POOL: name}, got)
    assert use.count == 2


def test_waiters_are_pending_and_timeouts_counted(metrics, engine_and_probe):
    engine, _, name = engine_and_probe
    holding = [engine.connect(), engine.connect()]  # the pool is exhausted
    errors: list[Exception] = []

    def try_checkout():
        try:
            engine.connect().close()
        except sa.exc.TimeoutError as e:
            errors.append(e)

    threads = [threading.Thread(target=try_checkout) for _ in range(3)]
    for t in threads:
        t.start()
    assert _wait_until(lambda: metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}) == 3)
    for t in threads:
        t.join()
    for c in holding:
        c.close()
    got = metrics.collect()
    assert len(errors) == 3
    assert metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: name}, got) == 3
    assert metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: name}, got) == 0
    wait = metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: name}, got)
    assert wait.count == 5
    assert wait.max >= 0.2  # each timed-out waiter waited its pool_timeout


def test_wait_goes_to_request_breakdown_and_connection_is_marked_held(engine_and_probe):
    engine, _, _ = engine_and_probe
    token = context.start_request("/orders")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
            assert context.db_connections_held() == 1
        assert context.db_connections_held() == 0
        ctx = context.current()
        assert ctx is not None and ctx.component_seconds["pool_wait"] > 0
    finally:
        context.end_request(token)


def test_pool_created_before_install_is_found_on_first_checkout(metrics, installed, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/early.sqlite", poolclass=QueuePool, pool_size=3)
    probe = SQLAlchemyPoolProbe(metrics.meter)
    installed.append(probe)
    with engine.connect():
        pass
    assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: "sqlalchemy:sqlite"}) == 3 + 10


def test_uninstall_restores_pool_and_stops_recording(metrics, tmp_path):
    original = QueuePool._do_get
    probe = SQLAlchemyPoolProbe(metrics.meter)
    assert QueuePool._do_get is not original and QueuePool._do_get._chokepoint_probe == "sqlalchemy_pool"
    probe.uninstall()
    assert QueuePool._do_get is original
    engine = sa.create_engine(f"sqlite:///{tmp_path}/after.sqlite", poolclass=QueuePool)
    with engine.connect():
        pass
    assert signals.DB_POOL_WAIT_TIME not in metrics.collect()
    assert not sa.event.contains(sa.pool.Pool, "checkout", probe._on_checkout)


def test_new_engine_pool_is_reported_before_any_checkout_and_nullpool_is_not(metrics, installed, tmp_path):
    installed.append(SQLAlchemyPoolProbe(metrics.meter))
    engine = sa.create_engine(f"sqlite:///{tmp_path}/fresh.sqlite", poolclass=QueuePool, pool_size=4, max_overflow=2)
    got = metrics.collect()
    assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {POOL: _url_name(engine.url)}, got) == 6
    null_engine = sa.create_engine(f"sqlite:///{tmp_path}/null.sqlite", poolclass=sa.pool.NullPool)
    token = context.start_request("/null")
    try:
        with null_engine.connect():
            assert context.db_connections_held() == 1
    finally:
        context.end_request(token)
    got = metrics.collect()
    assert metrics.points(signals.DB_POOL_CONNECTION_MAX, {POOL: _url_name(null_engine.url)}, got) == []
    assert metrics.points(signals.DB_POOL_CONNECTION_COUNT, {POOL: _url_name(null_engine.url)}, got) == []


def test_probe_failures_never_reach_the_application(engine_and_probe, caplog):
    engine, probe, _ = engine_and_probe
    probe.pools = probe._by_id = None  # break the probe's own bookkeeping
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 41 + 1")).scalar() == 42
    assert "chokepoint probe error" in caplog.text


def _pool_workload(metrics, tmp_path, label: str) -> dict:
    """Checkouts on a QueuePool (one timed out, one connection failing), a StaticPool and a
    NullPool, inside a request; what the probe reported and marked."""
    queue_engine = sa.create_engine(f"sqlite:///{tmp_path}/{label}.sqlite", poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.05)
    static_engine = sa.create_engine(f"sqlite:///{tmp_path}/{label}-static.sqlite", poolclass=sa.pool.StaticPool)
    null_engine = sa.create_engine(f"sqlite:///{tmp_path}/{label}-null.sqlite", poolclass=sa.pool.NullPool)
    broken_engine = sa.create_engine(f"sqlite:///{tmp_path}/missing-dir/{label}.sqlite", poolclass=QueuePool)
    held: list[int] = []
    token = context.start_request("/compare")
    try:
        for _ in range(3):
            with queue_engine.connect() as conn:
                conn.execute(sa.text("select 1"))
                held.append(context.db_connections_held())
        with queue_engine.connect(), static_engine.connect(), null_engine.connect():
            held.append(context.db_connections_held())
            with pytest.raises(sa.exc.TimeoutError):
                queue_engine.connect()
        with pytest.raises(sa.exc.OperationalError):
            broken_engine.connect()
        held.append(context.db_connections_held())
        breakdown = set(context.current().component_seconds)
    finally:
        context.end_request(token)
    got = metrics.collect()
    queue_name = _url_name(queue_engine.url)
    out = {
        "held": held,
        "breakdown": breakdown,
        "waits": metrics.point(signals.DB_POOL_WAIT_TIME, {POOL: queue_name}, got).count,
        "uses": {p.attributes[POOL].rsplit("/", 1)[-1].replace(label, "db"): p.count for p in metrics.points(signals.DB_POOL_USE_TIME, None, got)},
        "timeouts": metrics.value(signals.DB_POOL_TIMEOUTS, {POOL: queue_name}, got),
        "pending": metrics.value(signals.DB_POOL_PENDING_REQUESTS, {POOL: queue_name}, got),
        "used": metrics.value(signals.DB_POOL_CONNECTION_COUNT, {POOL: queue_name, signals.ATTR_DB_POOL_STATE: "used"}, got),
    }
    for engine in (queue_engine, static_engine, null_engine, broken_engine):
        engine.dispose()
    return out


def test_record_hooks_report_what_the_pool_events_did(monkeypatch, tmp_path):
    """The probe's default hooks (``_ConnectionRecord.checkout`` / ``.checkin``) and the
    pool events they replace give the same metrics and the same request marks."""
    from tests.instrument.probes.points import Metrics

    results = {}
    for hooks in ("record", "events"):
        monkeypatch.setenv("CHOKEPOINT_SQLALCHEMY_POOL_HOOKS", hooks)
        metrics = Metrics()
        probe = SQLAlchemyPoolProbe(metrics.meter)
        try:
            assert probe.hooks == hooks
            results[hooks] = _pool_workload(metrics, tmp_path, hooks)
        finally:
            probe.uninstall()
            metrics.close()
    assert results["record"] == results["events"]
    assert results["record"]["held"] == [1, 1, 1, 3, 0]
    assert results["record"]["waits"] == 5 and results["record"]["timeouts"] == 1 and results["record"]["pending"] == 0
    assert results["record"]["uses"] == {"db.sqlite": 4, "db-static.sqlite": 1, "db-null.sqlite": 1}


def test_engines_on_one_database_get_distinct_stable_pool_names(metrics, installed, tmp_path):
    installed.append(SQLAlchemyPoolProbe(metrics.meter))
    url = f"sqlite:///{tmp_path}/shared.sqlite"
    main = sa.create_engine(url, poolclass=QueuePool, pool_size=5)
    small = sa.create_engine(url, poolclass=QueuePool, pool_size=2)
    named = sa.create_engine(url, poolclass=QueuePool, pool_size=3, logging_name="orders")
    pool_named = sa.create_engine(url, poolclass=QueuePool, pool_size=4, pool_logging_name="reports")
    twin = sa.create_engine(url, poolclass=QueuePool, pool_size=6, logging_name="orders", query_cache_size=10, hide_parameters=True)
    got = metrics.collect()
    sizes = {p.attributes[POOL]: p.value for p in metrics.points(signals.DB_POOL_IDLE_MAX, None, got)}
    assert sizes == {url: 5, f"{url}#2": 2, "orders": 3, "reports": 4, "orders#2": 6}
    for engine in (main, small, named, pool_named, twin):
        with engine.connect():
            pass
    waits = {p.attributes[POOL] for p in metrics.points(signals.DB_POOL_WAIT_TIME, None, metrics.collect())}
    assert waits == set(sizes)
    del small  # a name comes free when its engine is gone: the next engine takes it
    import gc

    gc.collect()
    again = sa.create_engine(url, poolclass=QueuePool, pool_size=7)
    assert {p.attributes[POOL]: p.value for p in metrics.points(signals.DB_POOL_IDLE_MAX, None, metrics.collect())}[f"{url}#2"] == 7
    for engine in (main, named, pool_named, twin, again):
        engine.dispose()
