"""Shared types of the collector core: the per-bucket aggregates the store keeps and the
analyzer, ``/metrics`` and persistence read (Burrow's ``protocol`` idea: subsystems talk
through these types only).

- ``Bucket``: everything recorded during one ``bucket_seconds`` interval; ``merge`` folds a
  later (or concurrent) bucket in (counters and sketches add, gauges: the later value wins).
- ``RouteAgg`` (latency sketch in seconds + errors) for routes and dependencies,
  ``BreakdownAgg`` (seconds per component, all and slow requests), ``PoolAgg``,
  ``BreakerAgg``, ``RuntimeAgg``, ``LagPoint``.
Keys: ``routes[(service, route)]``, ``deps[(service, kind, target)]``,
``breakdown[(service, route)]``, ``pools[(service, kind, name)]``,
``breakers[(service, name)]``, ``lag[(group, topic, partition)]``, ``runtime[service]``,
``counters[(service, signal_name, key)]``, ``queue_waits[(service, route)]`` (``RouteAgg``: the
wait before the server saw a request, from ``X-Request-Start``).
"""

from __future__ import annotations

from dataclasses import dataclass

from chokepoint.collector.sketch import Sketch


class RouteAgg:
    """Latency sketch (seconds) + error count of one route or dependency in one bucket."""

    __slots__ = ("errors", "sketch")

    def __init__(self, sketch: Sketch, errors: int = 0) -> None:
        self.sketch = sketch
        self.errors = errors

    @property
    def count(self) -> int:
        return self.sketch.count

    def merge(self, other: RouteAgg) -> None:
        self.sketch.merge(other.sketch)
        self.errors += other.errors

    def copy(self) -> RouteAgg:
        return RouteAgg(self.sketch.copy(), self.errors)


class BreakdownAgg:
    """Seconds per component summed over requests (all and slow), with request counts."""

    __slots__ = ("all", "requests", "slow", "slow_requests")

    def __init__(self) -> None:
        self.all: dict[str, float] = {}
        self.slow: dict[str, float] = {}
        self.requests = 0
        self.slow_requests = 0

    def add(self, component: str, seconds: float, slow: bool) -> None:
        self.all[component] = self.all.get(component, 0.0) + seconds
        if slow:
            self.slow[component] = self.slow.get(component, 0.0) + seconds

    def merge(self, other: BreakdownAgg) -> None:
        for c, v in other.all.items():
            self.all[c] = self.all.get(c, 0.0) + v
        for c, v in other.slow.items():
            self.slow[c] = self.slow.get(c, 0.0) + v
        self.requests += other.requests
        self.slow_requests += other.slow_requests

    def copy(self) -> BreakdownAgg:
        b = BreakdownAgg()
        b.merge(self)
        return b


class PoolAgg:
    """A pool in one bucket: latest gauges, wait-time sketch (seconds), timeouts."""

    __slots__ = ("idle", "max", "pending", "processes", "timeouts", "updated_s", "used", "wait")

    def __init__(self, wait: Sketch) -> None:
        self.used: float | None = None
        self.max: float | None = None
        self.pending: float | None = None
        self.idle: float | None = None
        self.processes: float | None = None  # worker pools of a pre-fork server: processes, ``max`` threads each
        self.wait = wait
        self.timeouts = 0.0
        self.updated_s = 0.0

    def merge(self, other: PoolAgg) -> None:
        """Merge a LATER bucket into this one (gauges: the later value wins)."""
        for name in ("used", "max", "pending", "idle", "processes"):
            v = getattr(other, name)
            if v is not None:
                setattr(self, name, v)
        self.wait.merge(other.wait)
        self.timeouts += other.timeouts
        self.updated_s = max(self.updated_s, other.updated_s)

    def copy(self) -> PoolAgg:
        p = PoolAgg(self.wait.copy())
        p.used, p.max, p.pending, p.idle, p.processes = self.used, self.max, self.pending, self.idle, self.processes
        p.timeouts = self.timeouts
        p.updated_s = self.updated_s
        return p


class BreakerAgg:
    """A breaker in one bucket: latest state index, transitions by target state, calls by result."""

    __slots__ = ("calls", "state", "transitions", "updated_s")

    def __init__(self) -> None:
        self.state: int | None = None
        self.transitions: dict[str, float] = {}
        self.calls: dict[str, float] = {}
        self.updated_s = 0.0

    def merge(self, other: BreakerAgg) -> None:
        if other.state is not None:
            self.state = other.state
        for k, v in other.transitions.items():
            self.transitions[k] = self.transitions.get(k, 0.0) + v
        for k, v in other.calls.items():
            self.calls[k] = self.calls.get(k, 0.0) + v
        self.updated_s = max(self.updated_s, other.updated_s)

    def copy(self) -> BreakerAgg:
        b = BreakerAgg()
        b.merge(self)
        return b


# RuntimeAgg's latest-value fields; the last six (accept backlog, loop busy/stall, GC CPU) are
# persisted as one dict per row (``RUNTIME_EXTRA_GAUGES``)
RUNTIME_EXTRA_GAUGES = ("accept_backlog", "accept_backlog_max", "accept_rate", "loop_busy", "loop_stall_max", "gc_cpu")
RUNTIME_GAUGES = ("cpu", "run_queue_wait", "rss", "threads", *RUNTIME_EXTRA_GAUGES)


class RuntimeAgg:
    """Runtime of one service in one bucket: latest gauges, GC pause and loop-lag sketches (s)."""

    __slots__ = ("cpu", "gc_pause", "loop_lag", "rss", "run_queue_wait", "threads", "updated_s", *RUNTIME_EXTRA_GAUGES)

    def __init__(self, gc_pause: Sketch, loop_lag: Sketch) -> None:
        self.cpu: float | None = None
        self.run_queue_wait: float | None = None  # fraction of one core runnable but not running
        self.rss: float | None = None
        self.threads: float | None = None
        self.accept_backlog: float | None = None  # connections in the listen queue, all processes of the server
        self.accept_backlog_max: float | None = None  # the listen() backlog limit
        self.accept_rate: float | None = None  # connections accepted per second
        self.loop_busy: float | None = None  # fraction of wall time the event loop ran without yielding
        self.loop_stall_max: float | None = None  # s, longest single loop stall in the agent's interval
        self.gc_cpu: float | None = None  # s of GC CPU per s of wall time
        self.gc_pause = gc_pause
        self.loop_lag = loop_lag
        self.updated_s = 0.0

    def merge(self, other: RuntimeAgg) -> None:
        for name in RUNTIME_GAUGES:
            v = getattr(other, name)
            if v is not None:
                setattr(self, name, v)
        self.gc_pause.merge(other.gc_pause)
        self.loop_lag.merge(other.loop_lag)
        self.updated_s = max(self.updated_s, other.updated_s)

    def copy(self) -> RuntimeAgg:
        r = RuntimeAgg(self.gc_pause.copy(), self.loop_lag.copy())
        for name in RUNTIME_GAUGES:
            setattr(r, name, getattr(self, name))
        r.updated_s = self.updated_s
        return r


@dataclass
class LagPoint:
    """Latest consumer position of one partition within a bucket."""

    committed_offset: int | None = None
    log_end_offset: int | None = None
    lag: float | None = None
    time_lag_s: float | None = None
    status: str = "OK"
    timestamp_s: float = 0.0
    source: str = "pull"


class Bucket:
    """Everything recorded during one ``bucket_seconds`` interval starting at ``start``."""

    __slots__ = ("breakdown", "breakers", "counters", "deps", "lag", "pools", "queue_waits", "routes", "runtime", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.routes: dict[tuple[str, str], RouteAgg] = {}
        self.deps: dict[tuple[str, str, str], RouteAgg] = {}
        self.breakdown: dict[tuple[str, str], BreakdownAgg] = {}
        self.pools: dict[tuple[str, str, str], PoolAgg] = {}
        self.breakers: dict[tuple[str, str], BreakerAgg] = {}
        self.lag: dict[tuple[str, str, int], LagPoint] = {}
        self.runtime: dict[str, RuntimeAgg] = {}
        self.counters: dict[tuple[str, str, str], float] = {}
        self.queue_waits: dict[tuple[str, str], RouteAgg] = {}  # (service, route): wait before the server saw the request (s)

    def merge(self, other: Bucket) -> Bucket:
        """Merge ``other`` (a later or concurrent bucket) into this one; returns self."""
        for k, v in other.routes.items():
            mine = self.routes.get(k)
            if mine is None:
                self.routes[k] = v.copy()
            else:
                mine.merge(v)
        for k, v in other.deps.items():
            mine = self.deps.get(k)
            if mine is None:
                self.deps[k] = v.copy()
            else:
                mine.merge(v)
        for attr in ("queue_waits", "breakdown", "pools", "breakers", "runtime"):
            mine_d = getattr(self, attr)
            for k, v in getattr(other, attr).items():
                mine = mine_d.get(k)
                if mine is None:
                    mine_d[k] = v.copy()
                else:
                    mine.merge(v)
        for k, v in other.lag.items():
            mine = self.lag.get(k)
            if mine is None or v.timestamp_s >= mine.timestamp_s:
                self.lag[k] = LagPoint(**vars(v))
        for k, v in other.counters.items():
            self.counters[k] = self.counters.get(k, 0.0) + v
        return self

    def copy(self) -> Bucket:
        return Bucket(self.start).merge(self)

    def freeze(self) -> None:
        """Compact every sketch of a closed bucket (see ``Sketch.freeze``)."""
        for agg in self.routes.values():
            agg.sketch.freeze()
        for agg in self.deps.values():
            agg.sketch.freeze()
        for agg in self.queue_waits.values():
            agg.sketch.freeze()
        for p in self.pools.values():
            p.wait.freeze()
        for r in self.runtime.values():
            r.gc_pause.freeze()
            r.loop_lag.freeze()

    def is_empty(self) -> bool:
        return not (self.routes or self.deps or self.breakdown or self.pools or self.breakers or self.lag or self.runtime or self.counters or self.queue_waits)
