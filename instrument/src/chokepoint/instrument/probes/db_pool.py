"""DB connection-pool probes: SQLAlchemy ``QueuePool`` and psycopg_pool.

What they report (names from :mod:`chokepoint.instrument.signals`, attribute
``db.client.connection.pool.name``):

=====================================  =========================================================
``db.client.connection.count``         gauge, ``db.client.connection.state`` = ``used`` | ``idle``
``db.client.connection.max``           gauge, the most connections the pool will open
``db.client.connection.idle.max``      gauge, the pool's base size (SQLAlchemy ``pool_size``, psycopg ``min_size``)
``chokepoint.db.pool.overflow``        gauge, SQLAlchemy connections opened beyond ``pool_size``
``db.client.connection.pending_requests``  gauge, threads/tasks now waiting for a connection
``db.client.connection.wait_time``     histogram (s), time to obtain a connection, every checkout
``db.client.connection.use_time``      histogram (s), checkout → return (hold time)
``db.client.connection.timeouts``      counter, checkouts that gave up (``TimeoutError`` / ``PoolTimeout``)
=====================================  =========================================================

Gauges are read only when the meter collects.  Each wait is also added to the current
request's breakdown as ``pool_wait``, and checkout/return mark the request as holding
a DB connection (``chokepoint.instrument.context``), which is how an outbound call made
while a connection is held gets flagged.

Pool names: a SQLAlchemy engine's pool is named after the engine's ``logging_name``
(``create_engine(url, logging_name="orders")``; else the pool's ``pool_logging_name``),
else its URL without credentials (``postgresql+psycopg://127.0.0.1:5432/shop``).  Two
live engines that would share a name are told apart by creation order: the second one's
pool is ``<name>#2``, the third ``<name>#3`` (the shop's main and small engines on one
database: ``.../shop`` and ``.../shop#2``).  Pools created before the probe was
installed, or without an engine, are named ``sqlalchemy:<dialect>``.  psycopg pools use
their own ``name`` (``pool-1`` unless given).  Pools are found when created or on
their first checkout after install.  SQLAlchemy pools without a size (``NullPool``,
``StaticPool``, ``SingletonThreadPool``) still mark connections held for the request
breakdown but report no gauges.

Probe names for ``install_all(enabled=...)``: ``sqlalchemy_pool``, ``psycopg_pool``.
"""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from time import perf_counter
from typing import Any

from opentelemetry.metrics import Observation

from chokepoint.instrument import signals
from chokepoint.instrument.context import db_connection_acquired, db_connection_released, record_component_time
from chokepoint.instrument.probes.patching import BaseProbe, ProbeUnavailable, bind, report_error

_in_checkout: contextvars.ContextVar[bool] = contextvars.ContextVar("chokepoint_pool_checkout", default=False)
_MAX_TRACKED_CHECKOUTS = 100_000


class _PoolState:
    """What the probe keeps per pool: its name, its waiting callers and bound recorders.

    ``waiting`` holds one entry per caller now waiting for a connection: ``append`` and
    ``pop`` are atomic under the GIL, so counting needs no lock.  The recorders are the
    probe's histograms and counter with this pool's attributes fixed (built once)."""

    __slots__ = ("add_timeout", "attrs", "host", "name", "record_use", "record_wait", "waiting")

    def __init__(self, name: str, probe: _PoolProbe) -> None:
        self.name = name
        self.host: str | None = None  # an HTTP pool's host (its waits leave that host's client-span time)
        self.attrs = {signals.ATTR_DB_POOL_NAME: name}
        if probe.kind != "db":  # absent means db (signals.ATTR_POOL_KIND)
            self.attrs[signals.ATTR_POOL_KIND] = probe.kind
        self.waiting: list[None] = []
        self.record_wait = bind(probe.wait_time, self.attrs)
        self.record_use = bind(probe.use_time, self.attrs)
        self.add_timeout = bind(probe.timeouts, self.attrs)

    @property
    def pending(self) -> int:
        return len(self.waiting)


class _PoolProbe(BaseProbe):
    """Shared parts of the connection-pool probes: registry, wait timing, hold timing.

    Per checkout and return: a pool's state is found through a plain dict keyed by
    ``id(pool)`` (checked against a weak reference) rather than the weak-keyed registry,
    two ``perf_counter`` calls per timed interval, bound recorders, no lock.

    ``kind`` (``chokepoint.pool.kind``): ``db`` pools also mark the request as holding a
    DB connection between checkout and return; ``redis`` and ``http`` pools do not."""

    kind = "db"

    def __init__(self, meter) -> None:
        super().__init__(meter)
        self.pools: weakref.WeakKeyDictionary[Any, _PoolState] = weakref.WeakKeyDictionary()
        self._by_id: dict[int, tuple[weakref.ref, _PoolState]] = {}
        self._registry_lock = threading.Lock()
        self._checked_out_at: dict[int, tuple[float, Any]] = {}
        self.returned = 0  # connections returned to a pool so far (the agent's coverage check reads it)
        inst = self.instruments
        self.wait_time = inst.histogram(signals.DB_POOL_WAIT_TIME, "s", "Time to obtain a connection from the pool")
        self.use_time = inst.histogram(signals.DB_POOL_USE_TIME, "s", "Time a connection is held between checkout and return")
        self.timeouts = inst.counter(signals.DB_POOL_TIMEOUTS, "{timeout}", "Checkouts that timed out waiting for a connection")
        self.observe(signals.DB_POOL_CONNECTION_COUNT, "{connection}", "Connections by state", self._counts)
        self.observe(signals.DB_POOL_CONNECTION_MAX, "{connection}", "Most connections the pool opens", self._maxes)
        self.observe(signals.DB_POOL_IDLE_MAX, "{connection}", "Base size of the pool", self._bases)
        self.observe(signals.DB_POOL_PENDING_REQUESTS, "{request}", "Callers waiting for a connection", self._pending)

    def state(self, pool: Any) -> _PoolState:
        entry = self._by_id.get(id(pool))
        if entry is not None and entry[0]() is pool:
            return entry[1]
        with self._registry_lock:  # first checkouts may race: one state per pool
            st = self.pools.get(pool)
            if st is None:
                st = self.pools[pool] = _PoolState(self.pool_name(pool), self)
            key = id(pool)
            self._by_id[key] = (weakref.ref(pool, lambda _ref, key=key: self._forget(key, _ref)), st)
        return st

    def _forget(self, key: int, ref: weakref.ref) -> None:
        entry = self._by_id.get(key)
        if entry is not None and entry[0] is ref:
            self._by_id.pop(key, None)

    def pool_name(self, pool: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def sizes(self, pool: Any) -> dict[str, int] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    # --------------------------------------------------------------- timing
    def begin_wait(self, pool: Any) -> tuple[_PoolState, float] | None:
        try:
            st = self.state(pool)
            st.waiting.append(None)
            return st, perf_counter()
        except Exception:
            report_error(f"{self.name}.begin_wait")
            return None

    def end_wait(self, started: tuple[_PoolState, float] | None, timed_out: bool) -> float | None:
        """Record the wait begun by :meth:`begin_wait`; returns it (seconds), None if not timed."""
        if started is None:
            return None
        try:
            st, t0 = started
            waited = perf_counter() - t0
            st.waiting.pop()
            st.record_wait(waited)
            if timed_out:
                st.add_timeout(1)
            record_component_time("pool_wait", waited)
            return waited
        except Exception:
            report_error(f"{self.name}.end_wait")
            return None

    def checked_out(self, key: int, pool: Any) -> None:
        checked_out_at = self._checked_out_at
        if len(checked_out_at) > _MAX_TRACKED_CHECKOUTS:
            checked_out_at.clear()  # leaked entries (never returned): start over
        checked_out_at[key] = (perf_counter(), self.state(pool).record_use)
        if self.kind == "db":
            db_connection_acquired()

    def checked_in(self, key: int) -> None:
        out = self._checked_out_at.pop(key, None)
        if self.kind == "db":
            db_connection_released()
        self.returned += 1
        if out is not None:
            out[1](perf_counter() - out[0])

    # --------------------------------------------------------------- gauges
    def live_pools(self) -> list[tuple[Any, _PoolState]]:
        """The pools to report at collection, with their state."""
        return list(self.pools.items())

    def _each(self):
        for pool, st in self.live_pools():
            try:
                sizes = self.sizes(pool)
            except Exception:
                report_error(f"{self.name}.sizes")
                continue
            if sizes is not None:  # None: a pool without a size (SQLAlchemy NullPool, StaticPool, ...)
                yield st, sizes

    def _counts(self):
        for st, s in self._each():
            yield Observation(s["used"], {**st.attrs, signals.ATTR_DB_POOL_STATE: "used"})
            yield Observation(s["idle"], {**st.attrs, signals.ATTR_DB_POOL_STATE: "idle"})

    def _maxes(self):
        for st, s in self._each():
            if s["max"] >= 0:
                yield Observation(s["max"], st.attrs)

    def _bases(self):
        for st, s in self._each():
            if "base" in s:
                yield Observation(s["base"], st.attrs)

    def _pending(self):
        for st, _ in self._each():
            yield Observation(st.pending, st.attrs)


class SQLAlchemyPoolProbe(_PoolProbe):
    """SQLAlchemy pools: a timed ``QueuePool._do_get`` (wait, pending, timeouts) and, for
    every pool class, the hold time from ``_ConnectionRecord.checkout`` to ``.checkin``.

    The hold time hooks wrap those two methods (where the ``checkout`` / ``checkin`` pool
    events fire) rather than listening to the events: a ``checkout`` listener sends every
    checkout through SQLAlchemy's listener loop (reconnect attempts, ``fresh`` flags,
    dispatch), ~3 µs per request.  If a SQLAlchemy version lacks those methods, or with
    ``CHOKEPOINT_SQLALCHEMY_POOL_HOOKS=events``, the probe listens to the events instead
    (``hooks`` says which: ``"record"`` or ``"events"``).

    Added CPU per checkout + return (SQLite in-memory ``QueuePool``, lean registry, busy
    2-core box): 7.6–9.3 µs with the events, the per-pool lock and a weak-keyed lookup
    per call; 5.3–6.5 µs now, of which the two histogram records are most."""

    name = "sqlalchemy_pool"

    def __init__(self, meter) -> None:
        try:
            from sqlalchemy import event, exc
            from sqlalchemy.engine.interfaces import Dialect
            from sqlalchemy.pool import Pool, QueuePool
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs SQLAlchemy: {e}") from e
        super().__init__(meter)
        self._event, self._Pool, self._QueuePool = event, Pool, QueuePool
        self._engine_names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self.observe(signals.DB_POOL_OVERFLOW, "{connection}", "Connections opened beyond pool_size", self._overflows)
        probe, timeout_error, in_checkout = self, exc.TimeoutError, _in_checkout

        def wrap_do_get(original):
            def _do_get(pool):
                if not probe.active or in_checkout.get():
                    return original(pool)  # inactive, or QueuePool's own retry inside one checkout
                token = in_checkout.set(True)
                try:
                    st = probe.state(pool)
                    st.waiting.append(None)
                except Exception:
                    report_error("sqlalchemy_pool.begin_wait")
                    st = None
                timed_out, t0 = False, perf_counter()
                try:
                    return original(pool)
                except timeout_error:
                    timed_out = True
                    raise
                finally:
                    waited = perf_counter() - t0
                    in_checkout.reset(token)
                    if st is not None:
                        try:
                            st.waiting.pop()
                            st.record_wait(waited)
                            if timed_out:
                                st.add_timeout(1)
                            record_component_time("pool_wait", waited)
                        except Exception:
                            report_error("sqlalchemy_pool.end_wait")

            return _do_get

        def wrap_engine_created(original):
            # ``create_engine`` calls this classmethod hook on the dialect class with the new
            # engine.  (Wrapping ``Engine.__init__`` instead would hide its keyword names from
            # ``create_engine``, which reads them off ``__init__`` to route its arguments.)
            underlying = getattr(original, "__func__", None)

            def engine_created(cls, engine):
                if underlying is not None:
                    underlying(cls, engine)
                else:
                    original(engine)
                if probe.active:
                    try:
                        pool = engine.pool
                        probe._engine_names[pool] = probe._engine_pool_name(engine, pool, engine.url)
                        if isinstance(pool, QueuePool):
                            probe.state(pool)  # in the gauges from creation, before any checkout
                    except Exception:
                        report_error("sqlalchemy_pool.engine_created")

            return classmethod(engine_created)

        def wrap_recreate(original):
            def recreate(pool):
                new = original(pool)
                if probe.active and pool in probe._engine_names:
                    probe._engine_names[new] = probe._engine_names[pool]
                return new

            return recreate

        self.patch(QueuePool, "_do_get", wrap_do_get)
        self.patch(Dialect, "engine_created", wrap_engine_created)
        self.patch(QueuePool, "recreate", wrap_recreate)
        record_cls = _connection_record_class()
        if record_cls is not None and os.environ.get("CHOKEPOINT_SQLALCHEMY_POOL_HOOKS", "record").strip().lower() != "events":
            self.hooks = "record"
            self.patch(record_cls, "checkout", self._wrap_record_checkout)
            self.patch(record_cls, "checkin", self._wrap_record_checkin)
        else:
            self.hooks = "events"
            event.listen(Pool, "checkout", self._on_checkout)
            event.listen(Pool, "checkin", self._on_checkin)

    def _wrap_record_checkout(self, original):
        probe, checked_out_at = self, self._checked_out_at

        def checkout(cls, pool):
            fairy = original(pool)
            if probe.active:
                try:
                    if len(checked_out_at) > _MAX_TRACKED_CHECKOUTS:
                        checked_out_at.clear()  # leaked entries (never returned): start over
                    checked_out_at[id(fairy._connection_record)] = (perf_counter(), probe.state(pool).record_use)
                    db_connection_acquired()
                except Exception:
                    report_error("sqlalchemy_pool.checkout")
            return fairy

        return classmethod(checkout)

    def _wrap_record_checkin(self, original):
        probe, checked_out_at = self, self._checked_out_at

        def checkin(record, _fairy_was_created=True):
            # Where SQLAlchemy fires the ``checkin`` event: not for a double checkin.
            if probe.active and (record.fairy_ref is not None or not _fairy_was_created):
                try:
                    out = checked_out_at.pop(id(record), None)
                    db_connection_released()
                    probe.returned += 1
                    if out is not None:
                        out[1](perf_counter() - out[0])
                except Exception:
                    report_error("sqlalchemy_pool.checkin")
            return original(record, _fairy_was_created)

        return checkin

    def on_uninstall(self) -> None:
        if self.hooks != "events":
            return
        for name, fn in (("checkout", self._on_checkout), ("checkin", self._on_checkin)):
            try:
                self._event.remove(self._Pool, name, fn)
            except Exception:
                report_error("sqlalchemy_pool.remove_listener")

    def _on_checkout(self, dbapi_connection, connection_record, connection_proxy) -> None:
        if self.active:
            try:
                self.checked_out(id(connection_record), connection_proxy._pool)
            except Exception:
                report_error("sqlalchemy_pool.checkout")

    def _on_checkin(self, dbapi_connection, connection_record) -> None:
        if self.active:
            try:
                self.checked_in(id(connection_record))
            except Exception:
                report_error("sqlalchemy_pool.checkin")

    def _engine_pool_name(self, engine, pool, url) -> str:
        """The engine's ``logging_name`` (or the pool's), else the URL without credentials;
        ``#2``, ``#3``, ... for a second, third live engine that would get the same name."""
        base = getattr(engine, "logging_name", None) or getattr(pool, "_orig_logging_name", None) or _url_name(url)
        base = str(base)
        with self._registry_lock:
            taken = set(self._engine_names.values())
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}#{n}"
            return name

    def pool_name(self, pool) -> str:
        name = self._engine_names.get(pool)
        if name:
            return name
        dialect = getattr(pool, "_dialect", None)
        return f"sqlalchemy:{getattr(dialect, 'name', 'pool')}"

    def sizes(self, pool) -> dict[str, int] | None:
        if not isinstance(pool, self._QueuePool):
            return None
        size, max_overflow = pool.size(), pool._max_overflow
        return {
            "used": pool.checkedout(),
            "idle": pool.checkedin(),
            "max": size + max_overflow if max_overflow >= 0 else -1,
            "base": size,
            "overflow": max(0, pool.overflow()),
        }

    def _overflows(self):
        for st, s in self._each():
            yield Observation(s["overflow"], st.attrs)


def _connection_record_class():
    """SQLAlchemy's ``_ConnectionRecord`` if it has the ``checkout`` / ``checkin`` the probe wraps."""
    try:
        from sqlalchemy.pool.base import _ConnectionRecord
    except ImportError:
        return None
    checkout, checkin = _ConnectionRecord.__dict__.get("checkout"), _ConnectionRecord.__dict__.get("checkin")
    if not isinstance(checkout, classmethod) or not callable(checkin) or "fairy_ref" not in getattr(_ConnectionRecord, "__slots__", ()):
        return None
    return _ConnectionRecord


def _url_name(url) -> str:
    """``driver://host:port/database`` — never the user name, password or query."""
    host = url.host or ""
    if url.port:
        host = f"{host}:{url.port}"
    return f"{url.drivername}://{host}/{url.database or ''}"


class PsycopgPoolProbe(_PoolProbe):
    """psycopg_pool ``ConnectionPool`` / ``AsyncConnectionPool``: ``get_stats()`` + timed ``getconn``."""

    name = "psycopg_pool"

    def __init__(self, meter) -> None:
        try:
            import psycopg_pool
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs psycopg_pool: {e}") from e
        super().__init__(meter)
        probe, pool_timeout = self, psycopg_pool.PoolTimeout

        def wrap_init(original):
            def __init__(pool, *args, **kwargs):
                original(pool, *args, **kwargs)
                if probe.active:
                    try:
                        probe.state(pool)
                    except Exception:
                        report_error("psycopg_pool.init")

            return __init__

        def wrap_getconn(original):
            def getconn(pool, *args, **kwargs):
                if not probe.active:
                    return original(pool, *args, **kwargs)
                started, timed_out = probe.begin_wait(pool), False
                try:
                    conn = original(pool, *args, **kwargs)
                except pool_timeout:
                    timed_out = True
                    raise
                finally:
                    probe.end_wait(started, timed_out)
                probe._safe_out(conn, pool)
                return conn

            return getconn

        def wrap_agetconn(original):
            async def getconn(pool, *args, **kwargs):
                if not probe.active:
                    return await original(pool, *args, **kwargs)
                started, timed_out = probe.begin_wait(pool), False
                try:
                    conn = await original(pool, *args, **kwargs)
                except pool_timeout:
                    timed_out = True
                    raise
                finally:
                    probe.end_wait(started, timed_out)
                probe._safe_out(conn, pool)
                return conn

            return getconn

        def wrap_putconn(original):
            def putconn(pool, conn, *args, **kwargs):
                if probe.active:
                    probe._safe_in(conn)
                return original(pool, conn, *args, **kwargs)

            return putconn

        def wrap_aputconn(original):
            async def putconn(pool, conn, *args, **kwargs):
                if probe.active:
                    probe._safe_in(conn)
                return await original(pool, conn, *args, **kwargs)

            return putconn

        self.patch(psycopg_pool.ConnectionPool, "__init__", wrap_init)
        self.patch(psycopg_pool.ConnectionPool, "getconn", wrap_getconn)
        self.patch(psycopg_pool.ConnectionPool, "putconn", wrap_putconn)
        self.patch(psycopg_pool.AsyncConnectionPool, "__init__", wrap_init)
        self.patch(psycopg_pool.AsyncConnectionPool, "getconn", wrap_agetconn)
        self.patch(psycopg_pool.AsyncConnectionPool, "putconn", wrap_aputconn)

    def _safe_out(self, conn, pool) -> None:
        try:
            self.checked_out(id(conn), pool)
        except Exception:
            report_error("psycopg_pool.getconn")

    def _safe_in(self, conn) -> None:
        try:
            self.checked_in(id(conn))
        except Exception:
            report_error("psycopg_pool.putconn")

    def pool_name(self, pool) -> str:
        return str(pool.name)

    def sizes(self, pool) -> dict[str, int]:
        stats = pool.get_stats()
        available = stats.get("pool_available", 0)
        return {
            "used": max(0, stats.get("pool_size", 0) - available),
            "idle": available,
            "max": stats.get("pool_max", -1),
            "base": stats.get("pool_min", 0),
            "waiting": stats.get("requests_waiting", 0),
        }

    def _pending(self):
        # psycopg_pool counts its own queue of waiting clients: more exact than ours.
        for st, s in self._each():
            yield Observation(s["waiting"], st.attrs)
