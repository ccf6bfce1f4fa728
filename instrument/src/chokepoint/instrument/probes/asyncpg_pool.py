"""asyncpg connection-pool probe (``asyncpg_pool``): ``asyncpg.Pool`` as a DB pool.

Reports the ``db.client.connection.*`` signals of :mod:`.db_pool` with
``chokepoint.pool.kind`` = ``db``: connections used / idle (``get_size()`` minus
``get_idle_size()``), ``max`` (``max_size``), ``idle.max`` (``min_size``), callers now
waiting in ``acquire``, the wait of every acquire (``Pool._acquire``: the queue for a free
connection plus any connect it needs), the hold time from acquire to ``release`` and the
acquires that gave up (``asyncio.TimeoutError`` from ``acquire(timeout=...)``).  Each
wait also goes to the current request's breakdown as ``pool_wait``, and a held
connection marks the request as holding a DB connection (an outbound call made then is
flagged).  ``pool.fetch()`` / ``pool.execute()`` and ``async with pool.acquire()`` all go
through the two wrapped methods.

Pool names: ``asyncpg://host:port/database`` from the pool's DSN or ``host`` / ``port`` /
``database`` keywords (never the user or password), ``asyncpg://`` when neither is given
(libpq environment variables); a second live pool of the same name is ``<name>#2``.
Pools are reported from creation (``Pool.__init__``) or from their first acquire after
install, and kept (by identity: asyncpg pools cannot be weakly referenced) until closed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chokepoint.instrument.probes.db_pool import _PoolProbe, _PoolState
from chokepoint.instrument.probes.patching import ProbeUnavailable, report_error


def asyncpg_pool_name(args: tuple, kwargs: dict) -> str:
    """``asyncpg://host:port/database`` of a pool's connect arguments, without credentials."""
    dsn = args[0] if args and isinstance(args[0], str) else kwargs.get("dsn")
    host, port, database = kwargs.get("host"), kwargs.get("port"), kwargs.get("database")
    if isinstance(dsn, str) and "://" in dsn:
        parts = urlsplit(dsn)
        host = host or parts.hostname
        port = port or parts.port
        database = database or parts.path.lstrip("/")
    if isinstance(host, list | tuple):
        host = ",".join(map(str, host))
    where = f"{host or ''}{f':{port}' if port else ''}"
    return f"asyncpg://{where}/{database or ''}" if where or database else "asyncpg://"


class AsyncpgPoolProbe(_PoolProbe):
    """``asyncpg.Pool``: timed ``_acquire`` (wait, pending, timeouts), ``release`` (hold time)."""

    name = "asyncpg_pool"

    def __init__(self, meter) -> None:
        try:
            import asyncpg.pool as apool
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs asyncpg: {e}") from e
        super().__init__(meter)
        self._names: dict[int, str] = {}
        self._held: dict[int, tuple[object, _PoolState]] = {}
        probe, Pool = self, apool.Pool

        def wrap_init(original):
            def __init__(pool, *args, **kwargs):
                original(pool, *args, **kwargs)
                if probe.active:
                    try:
                        probe.state(pool)
                    except Exception:
                        report_error("asyncpg_pool.init")

            return __init__

        def wrap_acquire(original):
            async def _acquire(pool, timeout):
                if not probe.active:
                    return await original(pool, timeout)
                started, timed_out = probe.begin_wait(pool), False
                try:
                    proxy = await original(pool, timeout)
                except TimeoutError:
                    timed_out = True
                    raise
                finally:
                    probe.end_wait(started, timed_out)
                try:
                    probe.checked_out(id(proxy._holder), pool)
                except Exception:
                    report_error("asyncpg_pool.acquire")
                return proxy

            return _acquire

        def wrap_release(original):
            async def release(pool, connection, *args, **kwargs):
                if probe.active:
                    try:
                        holder = getattr(connection, "_holder", None)
                        if holder is not None and getattr(connection, "_con", None) is not None:
                            probe.checked_in(id(holder))
                    except Exception:
                        report_error("asyncpg_pool.release")
                return await original(pool, connection, *args, **kwargs)

            return release

        self.patch(Pool, "__init__", wrap_init)
        self.patch(Pool, "_acquire", wrap_acquire)
        self.patch(Pool, "release", wrap_release)

    # asyncpg's Pool has __slots__ without __weakref__: pools are kept by id until closed.
    def state(self, pool) -> _PoolState:
        entry = self._held.get(id(pool))
        if entry is not None and entry[0] is pool:
            return entry[1]
        with self._registry_lock:
            entry = self._held.get(id(pool))
            if entry is None or entry[0] is not pool:
                self._names.pop(id(pool), None)  # a closed pool's id, reused
                entry = self._held[id(pool)] = (pool, _PoolState(self.pool_name(pool), self))
            return entry[1]

    def live_pools(self) -> list[tuple[object, _PoolState]]:
        for key, (pool, _st) in list(self._held.items()):
            if getattr(pool, "_closed", False):
                self._held.pop(key, None)
                self._names.pop(key, None)
        return list(self._held.values())

    def pool_name(self, pool) -> str:
        """Called by ``state`` with the registry lock held."""
        name = self._names.get(id(pool))
        if name is None:
            base = asyncpg_pool_name(tuple(pool._connect_args or ()), dict(pool._connect_kwargs or {}))
            taken = {st.name for _pool, st in self._held.values()}
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}#{n}"
            self._names[id(pool)] = name
        return name

    def sizes(self, pool) -> dict[str, int] | None:
        if getattr(pool, "_closed", False):
            return None
        size, idle = pool.get_size(), pool.get_idle_size()
        return {"used": max(0, size - idle), "idle": idle, "max": pool.get_max_size(), "base": pool.get_min_size()}
