"""Client connection-pool probes: redis-py and outbound HTTP (urllib3/requests, httpx).

The ``db.client.connection.*`` signals of :mod:`.db_pool`, with ``chokepoint.pool.kind``
= ``redis`` or ``http`` and the pool named by ``chokepoint.pool.name``'s DB twin
``db.client.connection.pool.name``:

=======================  ==================================================================
``redis_pool``           ``redis.ConnectionPool`` / ``BlockingConnectionPool`` and their
                         ``redis.asyncio`` twins: ``get_connection`` timed (the wait, the
                         callers waiting), ``release`` (hold time); used / idle / max from
                         the pool's own lists; a ``No connection available`` (blocking pool
                         timed out) or ``Too many connections`` error counts as a timeout.
                         Named ``redis://host:port/db`` (``redis+unix://path`` for a socket).
``urllib3_pool``         urllib3 ``HTTPConnectionPool`` (what requests uses): ``_get_conn``
                         timed, ``_put_conn`` ends the hold; ``max`` is ``maxsize``, used is
                         ``maxsize`` minus the free slots in the pool's queue.  Only a pool
                         made with ``block=True`` ever waits (requests' default adapter
                         opens an extra connection instead); ``EmptyPoolError`` is a
                         timeout.  Named ``scheme://host:port``.
``httpx_pool``           httpcore's ``ConnectionPool`` / ``AsyncConnectionPool`` (what
                         httpx ``Client`` / ``AsyncClient`` use, sized by ``httpx.Limits``):
                         the wait for a connection (``PoolRequest.wait_for_connection``),
                         requests queued for one, connections used / idle,
                         ``max_connections``; ``PoolTimeout`` is a timeout.  One pool per
                         client, named ``httpx:<origin of its first request>``, reported
                         from that request on.
=======================  ==================================================================

Two live pools of one probe that would share a name are ``<name>#2``, ``#3`` (in creation
order).  The agent's own HTTP clients (its OTLP exporters' sessions) are no app pool:
:func:`exclude_own` marks them by identity, and every probe here skips a marked pool (no
gauges, no waits, no ``pool_wait``) whatever origin it talks to.  Each wait is added to the current request's breakdown as ``pool_wait``.  These pools do
not mark a DB connection as held.  Pools are found when created or on first use after
install; gauges are read at collection.
"""

from __future__ import annotations

import contextvars
from time import perf_counter
from typing import Any

from opentelemetry.metrics import Observation

from chokepoint.instrument.breakdown import HTTP_POOL_WAIT
from chokepoint.instrument.context import record_component_time
from chokepoint.instrument.probes.db_pool import _PoolProbe
from chokepoint.instrument.probes.patching import ProbeUnavailable, report_error

_OWN = "_chokepoint_own_pool"  # set on a pool (or pool manager) of the agent's own clients
_creating_own: contextvars.ContextVar[bool] = contextvars.ContextVar("chokepoint_creating_own_pool", default=False)


def own(pool) -> bool:
    """Whether ``pool`` belongs to one of the agent's own clients (see :func:`exclude_own`)."""
    return getattr(pool, _OWN, False) is True


def exclude_own(*clients) -> int:
    """Mark the agent's own HTTP clients so that no pool probe reports their pools.

    Usage (the agent does this for its exporters)::

        exclude_own(metric_reader, span_exporter)   # an exporter's ``_session``, a reader's ``_exporter``
        exclude_own(requests_session, urllib3_pool_manager, httpx_client)

    Accepts an OTLP/HTTP exporter (the session or urllib3 pool manager of its transport,
    older releases' ``_session``), a metric reader (its ``_exporter``),
    a ``requests.Session`` (the pool managers of its adapters, proxy managers included,
    also those made later), a urllib3 ``PoolManager`` (its pools now and every pool it makes
    later) and an httpx ``Client`` / ``AsyncClient`` (its transports' connection pools);
    anything else is ignored.  Marks by identity, so an app's own client to the same origin
    is still probed.  Never raises; returns how many pool managers and pools it marked.
    """
    marked = 0
    for client in clients:
        try:
            marked += _exclude(client, depth=0)
        except Exception:
            report_error("client_pools.exclude_own")
    return marked


def _exclude(obj, depth: int) -> int:
    """Mark the pools behind ``obj``, following the attributes clients keep them under."""
    if obj is None or depth > 5:
        return 0
    if hasattr(obj, "_new_pool") and hasattr(obj, "pools"):  # a urllib3 PoolManager / ProxyManager
        return _exclude_manager(obj)
    adapters = getattr(obj, "adapters", None)
    if isinstance(adapters, dict):  # a requests.Session
        return sum(_exclude_adapter(a) for a in adapters.values())
    if hasattr(obj, "_connections") and hasattr(obj, "_requests"):  # an httpcore (httpx) connection pool
        setattr(obj, _OWN, True)
        return 1
    marked = sum(_exclude(m, depth + 1) for m in getattr(obj, "_mounts", {}).values())  # an httpx client's mounts
    # an exporter's client / transport / session (OTLP/HTTP), a reader's exporter, an httpx transport's pool
    return marked + sum(_exclude(getattr(obj, attr, None), depth + 1) for attr in ("_exporter", "_client", "_transport", "_session", "_pool"))


def _exclude_adapter(adapter) -> int:
    marked = _exclude_manager(getattr(adapter, "poolmanager", None))
    marked += sum(_exclude_manager(m) for m in list(getattr(adapter, "proxy_manager", {}).values()))
    proxy_manager_for = getattr(adapter, "proxy_manager_for", None)
    if proxy_manager_for is not None and not getattr(proxy_manager_for, _OWN, False):

        def own_proxy_manager_for(*args, **kwargs):
            manager = proxy_manager_for(*args, **kwargs)
            exclude_own(manager)
            return manager

        setattr(own_proxy_manager_for, _OWN, True)
        adapter.proxy_manager_for = own_proxy_manager_for
    return marked


def _exclude_manager(manager) -> int:
    if manager is None or getattr(manager, _OWN, False):
        return 0
    new_pool = manager._new_pool

    def _new_pool(*args, **kwargs):
        token = _creating_own.set(True)  # the pool's __init__ (probed) runs inside
        try:
            pool = new_pool(*args, **kwargs)
        finally:
            _creating_own.reset(token)
        setattr(pool, _OWN, True)
        return pool

    manager._new_pool = _new_pool
    setattr(manager, _OWN, True)
    pools = manager.pools
    for key in list(pools.keys()):
        pool = pools.get(key)
        if pool is not None:
            setattr(pool, _OWN, True)
    return 1


class _ClientPoolProbe(_PoolProbe):
    """Wrappers shared by the client pools: a timed get (sync or async) and a release."""

    def timeout_error(self, exc: BaseException) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def end_wait(self, started, timed_out: bool) -> float | None:
        waited = super().end_wait(started, timed_out)
        if waited is not None and started[0].host is not None:
            record_component_time(HTTP_POOL_WAIT + started[0].host, waited)
        return waited

    def wrap_get(self, original):
        probe = self

        def get(pool, *args, **kwargs):
            if not probe.active or own(pool):
                return original(pool, *args, **kwargs)
            started, timed_out = probe.begin_wait(pool), False
            try:
                conn = original(pool, *args, **kwargs)
            except Exception as exc:
                timed_out = probe.timeout_error(exc)
                raise
            finally:
                probe.end_wait(started, timed_out)
            probe.safe_out(id(conn), pool)
            return conn

        return get

    def wrap_aget(self, original):
        probe = self

        async def get(pool, *args, **kwargs):
            if not probe.active or own(pool):
                return await original(pool, *args, **kwargs)
            started, timed_out = probe.begin_wait(pool), False
            try:
                conn = await original(pool, *args, **kwargs)
            except Exception as exc:
                timed_out = probe.timeout_error(exc)
                raise
            finally:
                probe.end_wait(started, timed_out)
            probe.safe_out(id(conn), pool)
            return conn

        return get

    def wrap_release(self, original):
        probe = self

        def release(pool, conn, *args, **kwargs):
            if probe.active and conn is not None:
                probe.safe_in(id(conn))
            return original(pool, conn, *args, **kwargs)

        return release

    def wrap_arelease(self, original):
        probe = self

        async def release(pool, conn, *args, **kwargs):
            if probe.active and conn is not None:
                probe.safe_in(id(conn))
            return await original(pool, conn, *args, **kwargs)

        return release

    def wrap_init(self, original):
        probe = self

        def __init__(pool, *args, **kwargs):
            original(pool, *args, **kwargs)
            if probe.active and not _creating_own.get():
                try:
                    probe.state(pool)
                except Exception:
                    report_error(f"{probe.name}.init")

        return __init__

    def live_pools(self):
        return [(pool, st) for pool, st in super().live_pools() if not own(pool)]

    def unique(self, base: str) -> str:
        """``base``, or ``base#2``, ``#3`` while a live pool of this probe has it (registry lock held)."""
        taken = {st.name for pool, st in self.pools.items() if not own(pool)}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}#{n}"
        return name

    def safe_out(self, key: int, pool) -> None:
        try:
            self.checked_out(key, pool)
        except Exception:
            report_error(f"{self.name}.get")

    def safe_in(self, key: int) -> None:
        if key in self._checked_out_at:
            try:
                self.checked_in(key)
            except Exception:
                report_error(f"{self.name}.release")


# ---------------------------------------------------------------------- redis-py
class RedisPoolProbe(_ClientPoolProbe):
    """redis-py connection pools, sync and asyncio, plain and blocking."""

    name = "redis_pool"
    kind = "redis"

    def __init__(self, meter) -> None:
        try:
            import redis.asyncio.connection as aconn
            import redis.connection as conn
            from redis.exceptions import ConnectionError as RedisConnectionError
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs redis: {e}") from e
        super().__init__(meter)
        self._error = RedisConnectionError
        self._blocking = (conn.BlockingConnectionPool, aconn.BlockingConnectionPool)
        for cls in (conn.ConnectionPool, conn.BlockingConnectionPool):
            self.patch(cls, "__init__", self.wrap_init)
            self.patch(cls, "get_connection", self.wrap_get)
            self.patch(cls, "release", self.wrap_release)
        for cls in (aconn.ConnectionPool, aconn.BlockingConnectionPool):
            self.patch(cls, "__init__", self.wrap_init)
            self.patch(cls, "get_connection", self.wrap_aget)
            self.patch(cls, "release", self.wrap_arelease)
        self._sync_blocking = conn.BlockingConnectionPool

    def timeout_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._error) and ("No connection available" in str(exc) or "Too many connections" in str(exc))

    def pool_name(self, pool) -> str:
        kw = getattr(pool, "connection_kwargs", None) or {}
        if kw.get("path"):
            return self.unique(f"redis+unix://{kw['path']}")
        return self.unique(f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}")

    def sizes(self, pool) -> dict[str, int] | None:
        maximum = int(pool.max_connections)
        if isinstance(pool, self._sync_blocking):  # a LIFO queue of free connections and None slots
            idle = sum(1 for c in list(pool.pool.queue) if c is not None)
            return {"used": max(0, len(pool._connections) - idle), "idle": idle, "max": maximum}
        return {"used": len(pool._in_use_connections), "idle": len(pool._available_connections), "max": maximum}


# ---------------------------------------------------------------------- urllib3
class Urllib3PoolProbe(_ClientPoolProbe):
    """urllib3 ``HTTPConnectionPool`` (and ``HTTPSConnectionPool``): requests' pools."""

    name = "urllib3_pool"
    kind = "http"

    def __init__(self, meter) -> None:
        try:
            from urllib3.connectionpool import HTTPConnectionPool
            from urllib3.exceptions import EmptyPoolError
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs urllib3: {e}") from e
        super().__init__(meter)
        self._empty = EmptyPoolError
        self.patch(HTTPConnectionPool, "__init__", self.wrap_init)
        self.patch(HTTPConnectionPool, "_get_conn", self.wrap_get)
        self.patch(HTTPConnectionPool, "_put_conn", self.wrap_release)

    def timeout_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._empty)

    def pool_name(self, pool) -> str:
        return self.unique(f"{pool.scheme}://{pool.host}:{pool.port}")

    def state(self, pool):
        st = super().state(pool)
        if st.host is None:
            st.host = str(pool.host)
        return st

    def sizes(self, pool) -> dict[str, int] | None:
        q = pool.pool
        if q is None:  # closed
            return None
        slots = list(q.queue)
        idle = sum(1 for c in slots if c is not None)
        maximum = int(q.maxsize)
        return {"used": max(0, maximum - len(slots)), "idle": idle, "max": maximum if pool.block else -1}


# ---------------------------------------------------------------------- httpx (httpcore)
_httpcore_pool: contextvars.ContextVar[Any] = contextvars.ContextVar("chokepoint_httpcore_pool", default=None)


class HttpxPoolProbe(_ClientPoolProbe):
    """httpcore's connection pools behind httpx clients (``httpx.Limits``)."""

    name = "httpx_pool"
    kind = "http"

    def __init__(self, meter) -> None:
        try:
            import httpcore
            from httpcore._async import connection_pool as apool
            from httpcore._sync import connection_pool as spool
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs httpcore (httpx): {e}") from e
        super().__init__(meter)
        self._timeout = httpcore.PoolTimeout
        self._names: dict[int, str] = {}
        probe, current, timeout_error = self, _httpcore_pool, httpcore.PoolTimeout

        def wrap_handle(original):
            def handle_request(pool, request):
                if not probe.active:
                    return original(pool, request)
                cell = probe._begin(pool, request)
                token = current.set(cell)
                try:
                    return original(pool, request)
                finally:
                    current.reset(token)
                    probe._end(cell)

            return handle_request

        def wrap_ahandle(original):
            async def handle_async_request(pool, request):
                if not probe.active:
                    return await original(pool, request)
                cell = probe._begin(pool, request)
                token = current.set(cell)
                try:
                    return await original(pool, request)
                finally:
                    current.reset(token)
                    probe._end(cell)

            return handle_async_request

        def wrap_wait(original):
            def wait_for_connection(pool_request, *args, **kwargs):
                cell = current.get()
                if cell is None:
                    return original(pool_request, *args, **kwargs)
                t0 = perf_counter()
                try:
                    return original(pool_request, *args, **kwargs)
                except timeout_error:
                    cell[2] = True
                    raise
                finally:
                    cell[1] += perf_counter() - t0

            return wait_for_connection

        def wrap_await(original):
            async def wait_for_connection(pool_request, *args, **kwargs):
                cell = current.get()
                if cell is None:
                    return await original(pool_request, *args, **kwargs)
                t0 = perf_counter()
                try:
                    return await original(pool_request, *args, **kwargs)
                except timeout_error:
                    cell[2] = True
                    raise
                finally:
                    cell[1] += perf_counter() - t0

            return wait_for_connection

        self.patch(spool.ConnectionPool, "handle_request", wrap_handle)
        self.patch(spool.PoolRequest, "wait_for_connection", wrap_wait)
        self.patch(apool.AsyncConnectionPool, "handle_async_request", wrap_ahandle)
        self.patch(apool.AsyncPoolRequest, "wait_for_connection", wrap_await)

    def _begin(self, pool, request) -> list | None:
        """``[pool state, seconds waited, timed out, host]`` for one request (httpcore may wait more than once)."""
        if own(pool):
            return None
        try:
            if id(pool) not in self._names:
                self._name_from(pool, request)
            return [self.state(pool), 0.0, False, request.url.host.decode()]
        except Exception:
            report_error("httpx_pool.begin")
            return None

    def _end(self, cell: list | None) -> None:
        if cell is None:
            return
        try:
            st, waited, timed_out, host = cell
            st.record_wait(waited)
            if timed_out:
                st.add_timeout(1)
            record_component_time("pool_wait", waited)
            if host:
                record_component_time(HTTP_POOL_WAIT + host, waited)
        except Exception:
            report_error("httpx_pool.end")

    def _name_from(self, pool, request) -> None:
        """Name a pool after its first request's origin."""
        url = request.url
        self._names[id(pool)] = f"httpx:{url.scheme.decode()}://{url.host.decode()}:{url.port or ''}"

    def timeout_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._timeout)

    def pool_name(self, pool) -> str:
        return self.unique(self._names.get(id(pool), "httpx"))

    def sizes(self, pool) -> dict[str, int] | None:
        conns = list(pool._connections)
        idle = sum(1 for c in conns if c.is_idle())
        return {"used": len(conns) - idle, "idle": idle, "max": int(pool._max_connections)}

    def _pending(self):
        # httpcore keeps its own queue: requests not yet given a connection
        for pool, st in self.live_pools():
            try:
                yield Observation(sum(1 for r in list(pool._requests) if r.is_queued()), st.attrs)
            except Exception:
                report_error("httpx_pool.pending")
