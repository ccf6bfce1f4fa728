"""The collector's embedded store: time buckets of sketches, counters and series.

Usage::

    store = Store(StoreConfig(bucket_seconds=10))        # clock=time.time by default
    store.add_requests("shop", "/items/{id}", [0.012, 0.020], errors=0)
    store.endpoints("shop", window_s=60)                 # JSON-ready, shapes of CONTRACT.md
    store.flush_due()                                     # every second: close finished buckets

Writes (the ingestor and the lag monitor call these; durations in seconds):
``add_requests`` / ``merge_requests`` (route latency), ``add_dependency_calls`` /
``merge_dependency``, ``add_breakdown``, ``set_pool`` / ``add_pool_waits`` /
``merge_pool_wait`` / ``add_pool_timeouts``, ``set_breaker_state`` /
``add_breaker_transitions`` / ``add_breaker_calls``, ``set_runtime`` /
``merge_runtime_sketch``, ``record_consumer_offsets`` / ``record_consumer_lag``,
``add_counter``, ``keep_trace``, ``count_ingested`` / ``count_rejected`` / ``count_dropped``.
Reads: ``health``, ``services``, ``endpoints``, ``dependencies``, ``pools`` and
``breakers`` (latest gauges; waits, timeouts, calls over the last 60 s),
``consumer_lag``, ``traces``, ``timeseries`` (``TIMESERIES_METRICS``), ``histogram``,
``heatmap``, ``breakdown``; for the analyzer ``window``/``buckets``; for ``/metrics``
``exposition_snapshot``.

Layout
- Everything written lands in the **open bucket** (``floor(now / bucket_seconds)``, by
  arrival time — the clock of the collector, not of the sender, so skewed or late
  senders cannot write into closed buckets).  ``flush_due`` closes buckets whose time
  has passed, merges them into the running totals that ``/metrics`` reads, and drops
  buckets older than ``memory_retention_s`` (default 1 h).  Closed buckets are what
  ``SqlitePersistence`` writes.
- A bucket (types in ``protocol.py``) holds, per key:
  ``routes[(service, route)] = RouteAgg(sketch of seconds, errors)``,
  ``deps[(service, kind, target)] = RouteAgg``,
  ``breakdown[(service, route)] = BreakdownAgg`` (seconds per component for all
  requests and for slow requests, request counts),
  ``pools[(service, kind, name)] = PoolAgg`` (latest used/max/pending/idle, wait sketch,
  timeouts), ``breakers[(service, name)] = BreakerAgg`` (latest state, transitions by
  target state, calls by result), ``lag[(group, topic, partition)]`` (latest offsets, lag,
  time lag, status), ``runtime[service] = RuntimeAgg`` (latest CPU, run-queue wait, RSS, threads, GC pause
  and event-loop lag sketches) and ``counters[(service, name, key)]`` (analyzer signals:
  retries, calls without timeout, calls in transaction, DB queries per request, ...).
- Queries over a window merge the buckets that overlap it (the open bucket included);
  rates divide by the time those buckets cover (from the start of the bucket holding the
  window's low edge, or the first data if later, to now).
- Cardinality caps (``StoreConfig``): past ``max_services`` services, and past
  ``max_routes_per_service`` routes / ``max_dependencies_per_service`` dependencies /
  ``max_pools_per_service`` pools of a service, new names fold into ``"other"``; every
  folded item is counted as ``chokepoint_ingest_dropped_total{reason="cardinality"}``.
- Kept traces: at most ``max_kept_traces`` traces and ``max_kept_spans`` spans in all
  (oldest evicted), each at most ``max_spans_per_trace`` spans (the rest counted as
  ``chokepoint_ingest_dropped_total{reason="trace_too_large"}``).
- Thread-safe: one lock around every read and write.

For the analyzer: ``window(window_s, end_s=None)`` returns one merged ``Bucket`` of a
window (``end_s`` in the past gives a baseline), ``buckets(window_s)`` the bucket list;
both are copies, safe to read without the lock.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chokepoint.collector import lag as lag_rules
from chokepoint.collector.catalog import BREAKER_STATES, LAG_STATUSES, TIMESERIES_METRICS
from chokepoint.collector.protocol import RUNTIME_EXTRA_GAUGES, RUNTIME_GAUGES, BreakdownAgg, BreakerAgg, Bucket, LagPoint, PoolAgg, RouteAgg, RuntimeAgg
from chokepoint.collector.sketch import DEFAULT_RELATIVE_ACCURACY, Sketch

__all__ = [
    "OTHER",
    "TIMESERIES_METRICS",
    "BreakdownAgg",
    "BreakerAgg",
    "Bucket",
    "LagPoint",
    "PoolAgg",
    "RouteAgg",
    "RuntimeAgg",
    "Store",
    "StoreConfig",
]

OTHER = "other"
SLOW_FLOOR_S = 1.0  # the agent's CHOKEPOINT_SLOW_FLOOR_MS default: a request above it is always "slow"


# log-spaced latency ladder for histogram()/heatmap(): 10 steps per decade, 0.1 ms .. 100 s
HISTOGRAM_LE_MS: tuple[float, ...] = tuple(float(f"{10 ** (e / 10):.4g}") for e in range(-10, 51))


@dataclass
class StoreConfig:
    """Store settings (defaults documented here are the production defaults)."""

    bucket_seconds: float = 10.0
    memory_retention_s: float = 3600.0
    disk_retention_s: float = 86400.0
    max_routes_per_service: int = 500
    max_dependencies_per_service: int = 500
    max_pools_per_service: int = 100
    max_breakers_per_service: int = 100
    max_services: int = 100
    max_lag_partitions: int = 10000
    max_kept_traces: int = 1000
    max_spans_per_trace: int = 500
    max_kept_spans: int = 50_000  # all kept traces together (oldest traces evicted)
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    lag_rules: lag_rules.LagRules = field(default_factory=lag_rules.LagRules)
    # a foreign SDK's trace is kept when its root is slower than the route's p99 over
    # this window, once the route has at least slow_trace_min_count requests in it
    slow_trace_window_s: float = 300.0
    slow_trace_min_count: int = 20
    # a service that sent a latency metric stays metric-authoritative this long
    authority_ttl_s: float = 300.0


# ---------------------------------------------------------------- the store


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rate(n: float, d: float) -> float:
    return round(n / d, 6) if d > 0 else 0.0


COVERAGE_TTL_S = 180.0  # a blind spot no agent has reported for this long is forgotten (the process went away)


class Store:
    """The in-memory store; see the module docstring."""

    def __init__(self, config: StoreConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or StoreConfig()
        self.clock = clock
        self._lock = threading.RLock()
        self._started_s = clock()
        self._first_data_s: float | None = None
        self._buckets: dict[float, Bucket] = {}  # start -> bucket (open one included)
        self._closed_upto = -math.inf  # buckets with start < this are closed
        self._totals = Bucket(0.0)  # all closed buckets merged (for /metrics counters)
        self._services: set[str] = set()
        self._names: dict[tuple[str, str], set[str]] = {}  # (service, "route"|"dep"|"pool"|"breaker") -> names
        # samples per (group, topic, partition, source): the agent and the pull monitor see the
        # same partition at different moments; mixing them would look like offset rewinds
        self._lag_samples: dict[tuple[str, str, int, str], deque[lag_rules.LagSample]] = {}
        self._lag_latest: dict[tuple[str, str, int, str], LagPoint] = {}  # newest point per partition and source
        self._log_end_history: dict[tuple[str, int], deque[tuple[float, int]]] = {}
        self._consumer_services: dict[tuple[str, str], str] = {}  # (group, topic) -> the consumer process's service
        self._traces: OrderedDict[str, dict] = OrderedDict()
        self._kept_spans = 0
        self._authority: dict[tuple[str, str], float] = {}
        self._p99_cache: dict[tuple[str, str, float], tuple[float, float | None]] = {}
        self.ingested_spans: dict[str, int] = {}
        self.ingested_points: dict[str, int] = {}
        self.rejected: dict[tuple[str, str], int] = {}
        self.dropped: dict[str, int] = {}
        # agent coverage (chokepoint.agent.coverage): (service, library, what, instance) -> latest report
        self._coverage: dict[tuple[str, str, str, object], dict] = {}

    # ------------------------------------------------------------ bucket plumbing
    def _bucket_start(self, ts: float) -> float:
        size = self.config.bucket_seconds
        return math.floor(ts / size) * size

    def _open(self) -> Bucket:
        now = self.clock()
        start = self._bucket_start(now)
        b = self._buckets.get(start)
        if b is None:
            b = self._buckets[start] = Bucket(start)
        if self._first_data_s is None:
            self._first_data_s = now
        return b

    def _new_sketch(self) -> Sketch:
        return Sketch(self.config.relative_accuracy)

    def flush_due(self) -> None:
        """Close buckets whose interval has passed (merge into totals) and drop expired ones."""
        with self._lock:
            now = self.clock()
            open_start = self._bucket_start(now)
            for start in sorted(self._buckets):
                if start < open_start and start >= self._closed_upto:
                    bucket = self._buckets[start]
                    self._totals.merge(bucket)
                    bucket.freeze()
            self._closed_upto = max(self._closed_upto, open_start)
            horizon = now - self.config.memory_retention_s
            for start in [s for s in self._buckets if s + self.config.bucket_seconds <= horizon]:
                del self._buckets[start]

    def closed_through(self) -> float:
        """Every bucket starting before this time is closed (``-inf`` before the first close)."""
        with self._lock:
            return self._closed_upto

    def closed_buckets(self, after_start: float = -math.inf) -> list[Bucket]:
        """Copies of closed buckets with ``start > after_start``, oldest first (for persistence)."""
        with self._lock:
            return [self._buckets[s].copy() for s in sorted(self._buckets) if after_start < s < self._closed_upto]

    def restore_bucket(self, bucket: Bucket) -> bool:
        """Put a persisted closed bucket back (merging with one already there); False if expired."""
        with self._lock:
            now = self.clock()
            if bucket.start + self.config.bucket_seconds <= now - self.config.memory_retention_s:
                return False
            mine = self._buckets.get(bucket.start)
            if mine is None:
                self._buckets[bucket.start] = bucket
            else:
                mine.merge(bucket)
            if self._first_data_s is None or bucket.start < self._first_data_s:
                self._first_data_s = bucket.start
            self._closed_upto = max(self._closed_upto, bucket.start + self.config.bucket_seconds)
            for k, lp in bucket.lag.items():
                if lp.committed_offset is not None and lp.log_end_offset is not None:
                    self._lag_samples.setdefault((*k, lp.source), deque(maxlen=256)).append(
                        lag_rules.LagSample(lp.timestamp_s, lp.committed_offset, lp.log_end_offset)
                    )
            return True

    def open_bucket(self) -> Bucket | None:
        """A copy of the bucket still being written (for a graceful shutdown), or None."""
        with self._lock:
            start = self._bucket_start(self.clock())
            b = self._buckets.get(start)
            return b.copy() if b is not None and start >= self._closed_upto else None

    def merge_into_open(self, bucket: Bucket) -> bool:
        """Merge a bucket saved at shutdown back as live data if it is still the open one; else
        restore it as a closed bucket.  Returns True when it was merged into the open bucket."""
        with self._lock:
            if bucket.start != self._bucket_start(self.clock()):
                self.restore_bucket(bucket)
                return False
            self._open().merge(bucket)
            return True

    def buckets(self, window_s: float, end_s: float | None = None) -> list[Bucket]:
        """Copies of the buckets starting in ``[end - window, end)`` (end = now + one bucket), oldest first."""
        with self._lock:
            return [b.copy() for b in self._window_list(window_s, end_s)]

    def window(self, window_s: float, end_s: float | None = None) -> Bucket:
        """One merged copy of the buckets of a window (for the analyzer; ``end_s`` for baselines)."""
        with self._lock:
            out = Bucket(self._bucket_start(self.clock() - window_s))
            for b in self._window_list(window_s, end_s):
                out.merge(b)
            return out

    def _window_list(self, window_s: float, end_s: float | None = None) -> list[Bucket]:
        now = self.clock()
        if end_s is None:
            lo = now - window_s
            return [self._buckets[s] for s in sorted(self._buckets) if s + self.config.bucket_seconds > lo]
        lo = end_s - window_s
        return [self._buckets[s] for s in sorted(self._buckets) if s + self.config.bucket_seconds > lo and s < end_s]

    def _effective_window(self, window_s: float) -> float:
        """Seconds the merged buckets of a window cover: from the start of the bucket that
        holds the window's low edge (or the first data, if later) to now; at least 1 s."""
        now = self.clock()
        lo = self._bucket_start(now - window_s)
        if self._first_data_s is not None and self._first_data_s > lo:
            lo = self._first_data_s
        return max(now - lo, 1.0)

    # ------------------------------------------------------------ cardinality
    def _service(self, service: str) -> str:
        if service in self._services:
            return service
        if len(self._services) >= self.config.max_services:
            self.dropped["cardinality"] = self.dropped.get("cardinality", 0) + 1
            return OTHER
        self._services.add(service)
        return service

    def _name(self, service: str, space: str, name: str, cap: int) -> str:
        names = self._names.get((service, space))
        if names is None:
            names = self._names[(service, space)] = set()
        if name in names:
            return name
        if len(names) >= cap:
            self.dropped["cardinality"] = self.dropped.get("cardinality", 0) + 1
            return OTHER
        names.add(name)
        return name

    def _route_key(self, service: str, route: str) -> tuple[str, str]:
        service = self._service(service)
        return service, self._name(service, "route", route, self.config.max_routes_per_service)

    def _dep_key(self, service: str, kind: str, target: str) -> tuple[str, str, str]:
        service = self._service(service)
        return service, kind, self._name(service, "dep", f"{kind}\x00{target}", self.config.max_dependencies_per_service).split("\x00")[-1]

    def _pool_key(self, service: str, kind: str, name: str) -> tuple[str, str, str]:
        service = self._service(service)
        return service, kind, self._name(service, "pool", f"{kind}\x00{name}", self.config.max_pools_per_service).split("\x00")[-1]

    def _breaker_key(self, service: str, name: str) -> tuple[str, str]:
        service = self._service(service)
        return service, self._name(service, "breaker", name, self.config.max_breakers_per_service)

    # ------------------------------------------------------------ writes: requests and dependencies
    def _latency_agg(self, table: dict, key: tuple) -> RouteAgg:
        """The open bucket's latency aggregate of ``key`` in ``table`` (created empty); lock held."""
        agg = table.get(key)
        if agg is None:
            agg = table[key] = RouteAgg(self._new_sketch())
        return agg

    def add_requests(self, service: str, route: str, durations_s: Iterable[float], errors: int = 0) -> None:
        """Add request latencies (seconds) of one route; ``errors`` of them failed."""
        with self._lock:
            agg = self._latency_agg(self._open().routes, self._route_key(service, route))
            agg.sketch.add_many(durations_s)
            agg.errors += errors

    def merge_requests(self, service: str, route: str, sketch: Sketch, errors: int = 0) -> None:
        """Merge a latency sketch (seconds) of one route (from a histogram metric)."""
        with self._lock:
            agg = self._latency_agg(self._open().routes, self._route_key(service, route))
            agg.sketch.merge(sketch)
            agg.errors += errors

    def add_dependency_calls(self, service: str, kind: str, target: str, durations_s: Iterable[float], errors: int = 0) -> None:
        with self._lock:
            agg = self._latency_agg(self._open().deps, self._dep_key(service, kind, target))
            agg.sketch.add_many(durations_s)
            agg.errors += errors

    def merge_dependency(self, service: str, kind: str, target: str, sketch: Sketch, errors: int = 0) -> None:
        with self._lock:
            agg = self._latency_agg(self._open().deps, self._dep_key(service, kind, target))
            agg.sketch.merge(sketch)
            agg.errors += errors

    def add_breakdown(self, service: str, route: str, component_seconds: dict[str, float], slow: bool = False, requests: int = 0) -> None:
        """Add per-component seconds of a route; ``requests`` = requests they cover (0 if unknown)."""
        with self._lock:
            key = self._route_key(service, route)
            bd = self._open().breakdown
            agg = bd.get(key)
            if agg is None:
                agg = bd[key] = BreakdownAgg()
            for component, seconds in component_seconds.items():
                agg.add(component, seconds, slow)
            agg.requests += requests
            if slow:
                agg.slow_requests += requests

    def add_counter(self, service: str, name: str, key: str, value: float) -> None:
        """Add to an analyzer signal counter (e.g. retries per target, calls without timeout)."""
        with self._lock:
            service = self._service(service)
            key = self._name(service, "counter", f"{name}\x00{key}", self.config.max_dependencies_per_service * 4).split("\x00")[-1]
            counters = self._open().counters
            ck = (service, name, key)
            counters[ck] = counters.get(ck, 0.0) + value

    # ------------------------------------------------------------ writes: pools, breakers, runtime
    def _pool(self, service: str, kind: str, name: str) -> PoolAgg:
        key = self._pool_key(service, kind, name)
        pools = self._open().pools
        p = pools.get(key)
        if p is None:
            p = pools[key] = PoolAgg(self._new_sketch())
        p.updated_s = self.clock()
        return p

    def set_pool(
        self,
        service: str,
        kind: str,
        name: str,
        used: float | None = None,
        max: float | None = None,
        pending: float | None = None,
        idle: float | None = None,
        processes: float | None = None,
    ) -> None:
        """Latest gauges of a pool; ``processes``: a pre-fork worker pool's processes (``max`` threads each)."""
        with self._lock:
            p = self._pool(service, kind, name)
            if processes is not None:
                p.processes = processes
            if used is not None:
                p.used = used
            if max is not None:
                p.max = max
            if pending is not None:
                p.pending = pending
            if idle is not None:
                p.idle = idle

    def merge_pool_wait(self, service: str, kind: str, name: str, sketch: Sketch) -> None:
        with self._lock:
            self._pool(service, kind, name).wait.merge(sketch)

    def add_pool_waits(self, service: str, kind: str, name: str, waits_s: Iterable[float]) -> None:
        with self._lock:
            self._pool(service, kind, name).wait.add_many(waits_s)

    def add_pool_timeouts(self, service: str, kind: str, name: str, n: float) -> None:
        with self._lock:
            self._pool(service, kind, name).timeouts += n

    def _breaker(self, service: str, name: str) -> BreakerAgg:
        key = self._breaker_key(service, name)
        brs = self._open().breakers
        b = brs.get(key)
        if b is None:
            b = brs[key] = BreakerAgg()
        b.updated_s = self.clock()
        return b

    def set_coverage(self, service: str, library: str, what: str, value: float, *, version: str = "", try_: str = "", instance: object = None) -> None:
        """The agent's latest coverage report for one library/what of one process (1 seen, 0 blind spot)."""
        with self._lock:
            self._coverage[(service, library, what, instance)] = {"value": float(value), "version": version, "try": try_, "seen_s": self.clock()}

    def coverage(self) -> list[dict]:
        """Every coverage report of the last ``COVERAGE_TTL_S`` seconds, worst first per
        service/library/what: ``[{"service", "library", "version", "what", "try", "value"}]``
        (``value`` 1 seen, 0 blind spot in at least one process)."""
        with self._lock:
            cutoff = self.clock() - COVERAGE_TTL_S
            for key in [k for k, v in self._coverage.items() if v["seen_s"] < cutoff]:
                del self._coverage[key]
            merged: dict[tuple[str, str, str], dict] = {}
            for (service, library, what, _instance), v in sorted(self._coverage.items(), key=lambda kv: (kv[0][:3], kv[1]["value"])):
                merged.setdefault(
                    (service, library, what),
                    {"service": service, "library": library, "version": v["version"], "what": what, "try": v["try"], "value": v["value"]},
                )
            return list(merged.values())

    def blind_spots(self) -> list[dict]:
        """``[{"service", "library", "version", "what", "try"}]``: what an agent reported it cannot
        see within the last ``COVERAGE_TTL_S`` seconds (one entry however many processes report it)."""
        return [{k: v for k, v in c.items() if k != "value"} for c in self.coverage() if c["value"] == 0]

    def set_breaker_state(self, service: str, name: str, state: int | str) -> None:
        """State as index of ``BREAKER_STATES`` or its name (closed/half_open/open)."""
        idx = BREAKER_STATES.index(state) if isinstance(state, str) else int(state)
        if not 0 <= idx < len(BREAKER_STATES):
            raise ValueError(f"breaker state must be 0..{len(BREAKER_STATES) - 1}, got {state!r}")
        with self._lock:
            self._breaker(service, name).state = idx

    def add_breaker_transitions(self, service: str, name: str, to_state: str, n: float = 1) -> None:
        with self._lock:
            b = self._breaker(service, name)
            b.transitions[to_state] = b.transitions.get(to_state, 0.0) + n

    def add_breaker_calls(self, service: str, name: str, result: str, n: float = 1) -> None:
        with self._lock:
            b = self._breaker(service, name)
            b.calls[result] = b.calls.get(result, 0.0) + n

    def _runtime(self, service: str) -> RuntimeAgg:
        service = self._service(service)
        rt = self._open().runtime
        r = rt.get(service)
        if r is None:
            r = rt[service] = RuntimeAgg(self._new_sketch(), self._new_sketch())
        r.updated_s = self.clock()
        return r

    def set_runtime(
        self,
        service: str,
        cpu: float | None = None,
        rss: float | None = None,
        threads: float | None = None,
        run_queue_wait: float | None = None,
        **extra: float | None,
    ) -> None:
        """Latest runtime gauges; ``extra``: any of ``RUNTIME_EXTRA_GAUGES`` (``accept_backlog``,
        ``accept_backlog_max``, ``accept_rate``, ``loop_busy``, ``loop_stall_max``, ``gc_cpu``)."""
        unknown = extra.keys() - set(RUNTIME_EXTRA_GAUGES)
        if unknown:
            raise TypeError(f"unknown runtime gauge(s) {sorted(unknown)}")
        with self._lock:
            r = self._runtime(service)
            if cpu is not None:
                r.cpu = cpu
            if run_queue_wait is not None:
                r.run_queue_wait = run_queue_wait
            if rss is not None:
                r.rss = rss
            if threads is not None:
                r.threads = threads
            for name, v in extra.items():
                if v is not None:
                    setattr(r, name, v)

    def merge_queue_wait(self, service: str, route: str, sketch: Sketch) -> None:
        """Waits (s) before the server saw a request (``X-Request-Start`` → server span start)."""
        with self._lock:
            self._latency_agg(self._open().queue_waits, self._route_key(service, route)).sketch.merge(sketch)

    def merge_runtime_sketch(self, service: str, which: str, sketch: Sketch) -> None:
        """``which`` is ``gc_pause`` or ``loop_lag`` (seconds)."""
        with self._lock:
            getattr(self._runtime(service), which).merge(sketch)

    # ------------------------------------------------------------ writes: consumer lag
    def record_consumer_offsets(
        self,
        group: str,
        topic: str,
        partition: int,
        committed_offset: int,
        log_end_offset: int,
        timestamp_s: float,
        time_lag_s: float | None = None,
        source: str = "pull",
        service: str | None = None,
    ) -> None:
        """One observation of a partition; time lag is interpolated from log-end history when not given.

        ``service``: the consumer process that reported it (an instrumented consumer's agent);
        ``consumer_lag()`` rows carry it, so findings are filed under the consumer's service."""
        key = (group, topic, int(partition))
        with self._lock:
            if service:
                self._consumer_services[(group, topic)] = service
            skey = (*key, source)
            if skey not in self._lag_samples and len(self._lag_samples) >= self.config.max_lag_partitions:
                self.dropped["cardinality"] = self.dropped.get("cardinality", 0) + 1
                return
            hist = self._log_end_history.get((topic, key[2]))
            if hist is None:
                hist = self._log_end_history[(topic, key[2])] = deque(maxlen=512)
            if not hist or timestamp_s > hist[-1][0]:
                hist.append((timestamp_s, int(log_end_offset)))
            horizon = timestamp_s - self.config.lag_rules.window_s * 6
            while hist and hist[0][0] < horizon and len(hist) > 2:
                hist.popleft()
            if time_lag_s is None:
                time_lag_s = lag_rules.time_lag_s(int(committed_offset), list(hist), timestamp_s)
            samples = self._lag_samples.get(skey)
            if samples is None:
                samples = self._lag_samples[skey] = deque(maxlen=256)
            samples.append(lag_rules.LagSample(timestamp_s, int(committed_offset), int(log_end_offset)))
            while samples and samples[0].timestamp_s < timestamp_s - self.config.lag_rules.window_s * 2 and len(samples) > 2:
                samples.popleft()
            status = lag_rules.evaluate(list(samples), timestamp_s, self.config.lag_rules)
            self._open().lag[key] = self._lag_latest[skey] = LagPoint(
                committed_offset=int(committed_offset),
                log_end_offset=int(log_end_offset),
                lag=float(log_end_offset - committed_offset),
                time_lag_s=time_lag_s,
                status=status,
                timestamp_s=timestamp_s,
                source=source,
            )

    def record_consumer_lag(
        self,
        group: str,
        topic: str,
        partition: int,
        lag: float | None,
        time_lag_s: float | None,
        timestamp_s: float,
        source: str = "agent",
        service: str | None = None,
    ) -> None:
        """A lag observation without offsets (agent gauges); status from the lag trend only."""
        key = (group, topic, int(partition))
        with self._lock:
            if service:
                self._consumer_services[(group, topic)] = service
            skey = (*key, source)
            if skey not in self._lag_latest and len(self._lag_latest) >= self.config.max_lag_partitions:
                self.dropped["cardinality"] = self.dropped.get("cardinality", 0) + 1
                return
            lp = self._open().lag.get(key)
            if lp is None or lp.source != source:
                lp = self._open().lag[key] = LagPoint(source=source)
            self._lag_latest[skey] = lp
            if lag is not None:
                lp.lag = float(lag)
                lp.status = LAG_STATUSES[4] if lag < 0 else lp.status
            if time_lag_s is not None:
                lp.time_lag_s = float(time_lag_s)
            lp.timestamp_s = timestamp_s

    # ------------------------------------------------------------ writes: traces and self-monitoring
    def keep_trace(self, trace: dict) -> None:
        """Keep (or extend) a trace; dict shape of ``traces()`` items; evicts the oldest past the caps."""
        with self._lock:
            tid = trace["trace_id"]
            have = self._traces.get(tid)
            if have is None:
                spans = trace.get("spans", [])
                trace["spans"] = spans[: self.config.max_spans_per_trace]
                self._count_trace_overflow(len(spans) - len(trace["spans"]))
                self._traces[tid] = trace
                self._kept_spans += len(trace["spans"])
                self._evict_traces()
            else:
                self._append_spans(have, trace.get("spans", []))
                for k in ("service", "route", "duration_ms", "error", "keep_reason", "start"):
                    if trace.get(k) not in (None, "", False) and have.get(k) in (None, "", False):
                        have[k] = trace[k]
                if trace.get("error"):
                    have["error"] = True

    def add_spans_to_kept_trace(self, trace_id: str, spans: list[dict]) -> bool:
        """Append spans to an already kept trace; False if the trace is not kept."""
        with self._lock:
            have = self._traces.get(trace_id)
            if have is None:
                return False
            self._append_spans(have, spans)
            return True

    def _append_spans(self, have: dict, spans: list[dict]) -> None:
        room = max(0, self.config.max_spans_per_trace - len(have["spans"]))
        added = spans[:room]
        have["spans"].extend(added)
        self._kept_spans += len(added)
        self._count_trace_overflow(len(spans) - len(added))
        self._evict_traces()

    def _count_trace_overflow(self, n: int) -> None:
        if n > 0:
            self.dropped["trace_too_large"] = self.dropped.get("trace_too_large", 0) + n

    def _evict_traces(self) -> None:
        while self._traces and (len(self._traces) > self.config.max_kept_traces or self._kept_spans > self.config.max_kept_spans):
            _tid, old = self._traces.popitem(last=False)
            self._kept_spans -= len(old["spans"])

    def is_trace_kept(self, trace_id: str) -> bool:
        return trace_id in self._traces

    def count_ingested(self, protocol: str, spans: int = 0, points: int = 0) -> None:
        with self._lock:
            if spans:
                self.ingested_spans[protocol] = self.ingested_spans.get(protocol, 0) + spans
            if points:
                self.ingested_points[protocol] = self.ingested_points.get(protocol, 0) + points

    def count_rejected(self, protocol: str, reason: str, n: int = 1) -> None:
        with self._lock:
            k = (protocol, reason)
            self.rejected[k] = self.rejected.get(k, 0) + n

    def count_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    # ------------------------------------------------------------ source authority (spans vs metrics)
    def mark_metric_authority(self, service: str, signal: str) -> None:
        """``signal`` (``server``, ``http``, ``db``, ``kafka``) of ``service`` comes from metrics now."""
        self._authority[(service, signal)] = self.clock()

    def metric_authoritative(self, service: str, signal: str) -> bool:
        t = self._authority.get((service, signal))
        return t is not None and self.clock() - t <= self.config.authority_ttl_s

    def route_quantile_s(self, service: str, route: str, q: float = 0.99) -> float | None:
        """The route's ``q``-quantile (seconds) over ``slow_trace_window_s``; cached per bucket; None if too few requests."""
        key = (service, route, q)
        now_bucket = self._bucket_start(self.clock())
        cached = self._p99_cache.get(key)
        if cached is not None and cached[0] == now_bucket:
            return cached[1]
        with self._lock:
            s = self._new_sketch()
            for b in self._window_list(self.config.slow_trace_window_s):
                agg = b.routes.get((service, route))
                if agg is not None:
                    s.merge(agg.sketch)
            value = s.quantile(q) if s.count >= self.config.slow_trace_min_count else None
            if value is not None:  # unknown stays uncached: the route may reach the minimum any moment
                if len(self._p99_cache) > 10 * self.config.max_routes_per_service:
                    self._p99_cache.clear()
                self._p99_cache[key] = (now_bucket, value)
            return value

    # ------------------------------------------------------------ queries
    def health(self) -> dict:
        with self._lock:
            return {
                "status": "ok",
                "services": len(self._services),
                "spans_total": sum(self.ingested_spans.values()),
                "metric_points_total": sum(self.ingested_points.values()),
                "rejected_total": sum(self.rejected.values()),
                "dropped_total": sum(self.dropped.values()),
                "buckets_in_memory": len(self._buckets),
                "kept_traces": len(self._traces),
                "uptime_s": round(self.clock() - self._started_s, 3),
                "blind_spots": self.blind_spots(),
            }

    def _merged_routes(self, window_s: float, table: str = "routes") -> dict[tuple[str, str], RouteAgg]:
        out: dict[tuple[str, str], RouteAgg] = {}
        for b in self._window_list(window_s):
            for k, v in getattr(b, table).items():
                mine = out.get(k)
                if mine is None:
                    out[k] = v.copy()
                else:
                    mine.merge(v)
        return out

    def _merged_deps(self, window_s: float) -> dict[tuple[str, str, str], RouteAgg]:
        out: dict[tuple[str, str, str], RouteAgg] = {}
        for b in self._window_list(window_s):
            for k, v in b.deps.items():
                mine = out.get(k)
                if mine is None:
                    out[k] = v.copy()
                else:
                    mine.merge(v)
        return out

    def services(self, window_s: float = 60) -> list[dict]:
        with self._lock:
            routes = self._merged_routes(window_s)
            span = self._effective_window(window_s)
            per: dict[str, list[float]] = {s: [0, 0, 0] for s in self._services}
            for (svc, _route), agg in routes.items():
                p = per.setdefault(svc, [0, 0, 0])
                p[0] += 1
                p[1] += agg.count
                p[2] += agg.errors
            return [{"name": svc, "endpoints": int(p[0]), "rps": _rate(p[1], span), "error_rate": _rate(p[2], p[1])} for svc, p in sorted(per.items())]

    def endpoints(self, service: str | None = None, window_s: float = 60) -> list[dict]:
        with self._lock:
            routes = self._merged_routes(window_s)
            span = self._effective_window(window_s)
            out = []
            for (svc, route), agg in sorted(routes.items()):
                if service is not None and svc != service:
                    continue
                s = agg.sketch
                p50, p90, p99, p999 = s.quantiles((0.5, 0.9, 0.99, 0.999))
                out.append(
                    {
                        "service": svc,
                        "route": route,
                        "rps": _rate(s.count, span),
                        "error_rate": _rate(agg.errors, s.count),
                        "p50_ms": _ms(p50),
                        "p90_ms": _ms(p90),
                        "p99_ms": _ms(p99),
                        "p999_ms": _ms(p999),
                        "count": s.count,
                    }
                )
            return out

    def dependencies(self, window_s: float = 60) -> list[dict]:
        with self._lock:
            deps = self._merged_deps(window_s)
            span = self._effective_window(window_s)
            return [
                {
                    "service": svc,
                    "kind": kind,
                    "target": target,
                    "rps": _rate(agg.count, span),
                    "error_rate": _rate(agg.errors, agg.count),
                    "p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "p99_ms": _ms(agg.sketch.quantile(0.99)),
                    "count": agg.count,
                }
                for (svc, kind, target), agg in sorted(deps.items())
            ]

    def pools(self, window_s: float = 60) -> list[dict]:
        """Latest gauges; ``wait_p99_ms`` and ``timeouts`` over the last ``window_s`` (60 s)."""
        with self._lock:
            latest = Bucket(0.0)
            for b in self._window_list(self.config.memory_retention_s):
                for k, v in b.pools.items():
                    mine = latest.pools.get(k)
                    if mine is None:
                        latest.pools[k] = PoolAgg(self._new_sketch())
                        mine = latest.pools[k]
                    mine.used = v.used if v.used is not None else mine.used
                    mine.max = v.max if v.max is not None else mine.max
                    mine.pending = v.pending if v.pending is not None else mine.pending
                    mine.idle = v.idle if v.idle is not None else mine.idle
                    mine.processes = v.processes if v.processes is not None else mine.processes
                    if b.start + self.config.bucket_seconds > self.clock() - window_s:
                        mine.wait.merge(v.wait)
                        mine.timeouts += v.timeouts
            return [
                {
                    "service": svc,
                    "kind": kind,
                    "name": name,
                    "used": p.used,
                    "max": p.max,
                    "pending": p.pending,
                    "idle": p.idle,
                    "processes": p.processes,
                    "wait_p99_ms": _ms(p.wait.quantile(0.99)),
                    "wait_count": p.wait.count,
                    "timeouts": p.timeouts,
                }
                for (svc, kind, name), p in sorted(latest.pools.items())
                # a pool with no gauge and no checkout (an internal executor, a folded name) tells nothing
                if p.used is not None or p.max is not None or p.pending is not None or p.wait.count
            ]

    def queue_waits(self, window_s: float = 60) -> list[dict]:
        """Per service and route: the wait before the server saw a request over ``window_s``
        (``count``, ``p50_ms`` / ``p95_ms`` / ``p99_ms``, ``mean_ms``), from ``X-Request-Start``."""
        with self._lock:
            merged = self._merged_routes(window_s, "queue_waits")
            return [
                {
                    "service": svc,
                    "route": route,
                    "count": agg.count,
                    "p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "p95_ms": _ms(agg.sketch.quantile(0.95)),
                    "p99_ms": _ms(agg.sketch.quantile(0.99)),
                    "mean_ms": _ms(agg.sketch.sum / agg.count) if agg.count else None,
                }
                for (svc, route), agg in sorted(merged.items())
                if agg.count
            ]

    def breakers(self, window_s: float = 60) -> list[dict]:
        """Latest state; transitions, rejected, calls and error rate over the last ``window_s`` (60 s)."""
        with self._lock:
            state: dict[tuple[str, str], int | None] = {}
            agg: dict[tuple[str, str], BreakerAgg] = {}
            lo = self.clock() - window_s
            for b in self._window_list(self.config.memory_retention_s):
                for k, v in b.breakers.items():
                    if v.state is not None or k not in state:
                        state[k] = v.state if v.state is not None else state.get(k)
                    a = agg.setdefault(k, BreakerAgg())
                    if b.start + self.config.bucket_seconds > lo:
                        a.merge(v)
            out = []
            for (svc, name), a in sorted(agg.items()):
                st = state.get((svc, name))
                calls = {r: a.calls.get(r, 0.0) for r in ("success", "failure", "rejected")}
                for r, v in a.calls.items():
                    calls.setdefault(r, v)
                judged = calls["success"] + calls["failure"]
                out.append(
                    {
                        "service": svc,
                        "name": name,
                        "state": BREAKER_STATES[st] if st is not None else "closed",
                        "transitions": sum(a.transitions.values()),
                        "transitions_to": dict(a.transitions),
                        "rejected": calls["rejected"],
                        "calls": calls,
                        "error_rate": _rate(calls["failure"], judged),
                    }
                )
            return out

    def consumer_lag(self) -> list[dict]:
        """One row per partition.  When both the pull monitor and the agent report a
        partition, the pull monitor's row wins while it is fresh (< 5 min; it reads the
        broker, like Burrow), and a missing time lag is taken from the other source."""
        with self._lock:
            latest: dict[tuple[str, str, int], LagPoint] = {}
            for b in self._window_list(self.config.memory_retention_s):
                for k, v in b.lag.items():
                    latest[k] = v
            now = self.clock()
            for (group, topic, partition, source), lp in self._lag_latest.items():
                if now - lp.timestamp_s > self.config.memory_retention_s:
                    continue
                key = (group, topic, partition)
                have = latest.get(key)
                if (
                    have is None
                    or source == have.source
                    or (source == "pull" and now - lp.timestamp_s < 300)
                    or (have.source != "pull" and lp.timestamp_s > have.timestamp_s)
                ):
                    other = have
                    latest[key] = lp
                else:
                    other = lp
                if latest[key].time_lag_s is None and other is not None and other.time_lag_s is not None:
                    latest[key] = LagPoint(**{**vars(latest[key]), "time_lag_s": other.time_lag_s})
            out = []
            for (group, topic, partition), lp in sorted(latest.items()):
                samples = self._lag_samples.get((group, topic, partition, lp.source))
                status = lag_rules.evaluate(list(samples), now, self.config.lag_rules) if samples else lp.status
                out.append(
                    {
                        "group": group,
                        "topic": topic,
                        "partition": partition,
                        "lag": lp.lag,
                        "time_lag_s": None if lp.time_lag_s is None else round(lp.time_lag_s, 3),
                        "status": status,
                        "committed_offset": lp.committed_offset,
                        "log_end_offset": lp.log_end_offset,
                        "source": lp.source,
                        "service": self._consumer_services.get((group, topic)),
                        "updated": lp.timestamp_s,
                    }
                )
            return out

    def traces(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> list[dict]:
        """Kept traces, newest first; ``slow_only`` = kept because slow (not error/random)."""
        with self._lock:
            out = []
            for t in reversed(self._traces.values()):
                if route is not None and t.get("route") != route:
                    continue
                if slow_only and t.get("keep_reason") != "slow":
                    continue
                out.append({**t, "spans": [dict(s) for s in t["spans"]]})
                if len(out) >= limit:
                    break
            return out

    # ------------------------------------------------------------ series for dashboards
    def timeseries(self, metric: str, service: str | None = None, target: str | None = None, window_s: float = 3600) -> list[dict]:
        """``[{"labels": {...}, "points": [[ts, value], ...]}]``, one point per bucket, oldest first."""
        if metric not in TIMESERIES_METRICS:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(TIMESERIES_METRICS)}")
        size = self.config.bucket_seconds
        series: dict[tuple, list] = {}

        now = self.clock()

        def elapsed(ts: float) -> float:
            """A closed bucket spans ``size``; the open one only up to now."""
            return max(min(size, now - ts), 1.0)

        def point(labels: tuple, ts: float, value: float | None) -> None:
            if value is not None:
                series.setdefault(labels, []).append([ts, round(value, 6)])

        with self._lock:
            for b in self._window_list(window_s):
                ts = b.start
                if metric in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p999_ms", "rps", "error_rate"):
                    for (svc, route), agg in b.routes.items():
                        if (service is not None and svc != service) or (target is not None and route != target):
                            continue
                        lab = (("service", svc), ("route", route))
                        if metric == "rps":
                            point(lab, ts, agg.count / elapsed(ts))
                        elif metric == "error_rate":
                            point(lab, ts, agg.errors / agg.count if agg.count else 0.0)
                        else:
                            q = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99, "latency_p999_ms": 0.999}[metric]
                            point(lab, ts, _ms(agg.sketch.quantile(q)))
                elif metric in ("dependency_p99_ms", "dependency_rps"):
                    for (svc, kind, tgt), agg in b.deps.items():
                        if (service is not None and svc != service) or (target is not None and tgt != target):
                            continue
                        lab = (("service", svc), ("kind", kind), ("target", tgt))
                        point(lab, ts, agg.count / elapsed(ts) if metric == "dependency_rps" else _ms(agg.sketch.quantile(0.99)))
                elif metric.startswith("pool_"):
                    for (svc, kind, name), p in b.pools.items():
                        if (service is not None and svc != service) or (target is not None and name != target):
                            continue
                        lab = (("service", svc), ("kind", kind), ("pool", name))
                        v = {"pool_used": p.used, "pool_max": p.max, "pool_pending": p.pending}.get(metric)
                        point(lab, ts, _ms(p.wait.quantile(0.99)) if metric == "pool_wait_p99_ms" else v)
                elif metric in ("cpu_utilization", "cpu_run_queue_wait", "rss_bytes", "gc_pause_p99_ms", "event_loop_lag_p99_ms", "threads"):
                    for svc, r in b.runtime.items():
                        if service is not None and svc != service:
                            continue
                        lab = (("service", svc),)
                        v = {
                            "cpu_utilization": r.cpu,
                            "cpu_run_queue_wait": r.run_queue_wait,
                            "rss_bytes": r.rss,
                            "threads": r.threads,
                            "gc_pause_p99_ms": _ms(r.gc_pause.quantile(0.99)),
                            "event_loop_lag_p99_ms": _ms(r.loop_lag.quantile(0.99)),
                        }[metric]
                        point(lab, ts, v)
                elif metric == "breaker_state":
                    for (svc, name), br in b.breakers.items():
                        if (service is not None and svc != service) or (target is not None and name != target):
                            continue
                        point((("service", svc), ("breaker", name)), ts, br.state)
                else:  # consumer_lag, consumer_time_lag_s
                    for (group, topic, partition), lp in b.lag.items():
                        if target is not None and target != f"{group}/{topic}/{partition}":
                            continue
                        lab = (("group", group), ("topic", topic), ("partition", str(partition)))
                        point(lab, ts, lp.lag if metric == "consumer_lag" else lp.time_lag_s)
        return [{"labels": dict(lab), "points": pts} for lab, pts in sorted(series.items())]

    def _route_sketches(self, service: str, route: str, window_s: float) -> list[tuple[float, Sketch]]:
        out = []
        for b in self._window_list(window_s):
            agg = b.routes.get((service, route))
            if agg is not None:
                out.append((b.start, agg.sketch))
        return out

    @staticmethod
    def _ladder_counts(sketch: Sketch) -> list[int]:
        counts = [0] * (len(HISTOGRAM_LE_MS) + 1)
        for k, c in sketch.items():
            ms = sketch.value_of(k) * 1000.0
            ms = min(max(ms, sketch.min * 1000.0), sketch.max * 1000.0)
            counts[bisect.bisect_left(HISTOGRAM_LE_MS, ms)] += c
        counts[0] += sketch.zero_count + sum(sketch.negative_bins.values())
        return counts

    def histogram(self, service: str, route: str, window_s: float = 60) -> list[dict]:
        """Per-bucket (not cumulative) counts on the log-spaced ``HISTOGRAM_LE_MS`` ladder, trimmed to the data."""
        with self._lock:
            s = self._new_sketch()
            for _ts, sk in self._route_sketches(service, route, window_s):
                s.merge(sk)
        if s.count == 0:
            return []
        counts = self._ladder_counts(s)
        nz = [i for i, c in enumerate(counts) if c]
        les = [*list(HISTOGRAM_LE_MS), math.inf]
        return [{"le_ms": les[i] if les[i] != math.inf else None, "count": counts[i]} for i in range(nz[0], nz[-1] + 1)]

    def heatmap(self, service: str, route: str, window_s: float = 3600) -> dict:
        """Counts per bucket time and latency band (``le_ms`` ladder trimmed to the data)."""
        with self._lock:
            rows = [(ts, self._ladder_counts(sk)) for ts, sk in self._route_sketches(service, route, window_s)]
        if not rows:
            return {"times": [], "le_ms": [], "counts": []}
        used = [i for _ts, c in rows for i, n in enumerate(c) if n]
        lo, hi = min(used), max(used)
        les = [*list(HISTOGRAM_LE_MS), None]
        return {"times": [ts for ts, _c in rows], "le_ms": les[lo : hi + 1], "counts": [c[lo : hi + 1] for _ts, c in rows]}

    def breakdown(self, service: str, route: str, window_s: float = 60) -> dict:
        """Average milliseconds per request by component, for all requests and for slow ones."""
        with self._lock:
            agg = BreakdownAgg()
            count = 0
            sk = self._new_sketch()
            for b in self._window_list(window_s):
                bd = b.breakdown.get((service, route))
                if bd is not None:
                    agg.merge(bd)
                r = b.routes.get((service, route))
                if r is not None:
                    count += r.count
                    sk.merge(r.sketch)
        requests = agg.requests or count
        slow_requests = agg.slow_requests
        if not slow_requests and agg.slow and sk.count:
            # metric-fed breakdown (no per-request count): the agent marks as slow the requests
            # above the route's rolling p95 and every request above its floor (1 s), so the slow
            # requests are the more of those two counts (all of them when every request is slow)
            above_p95 = sk.count - sk.count_le(sk.quantile(0.95) or 0.0)
            above_floor = sk.count - sk.count_le(SLOW_FLOOR_S)
            slow_requests = max(1, above_p95, above_floor)
        return {
            "all": {c: round(v * 1000.0 / requests, 3) for c, v in sorted(agg.all.items())} if requests else {},
            "slow": {c: round(v * 1000.0 / slow_requests, 3) for c, v in sorted(agg.slow.items())} if slow_requests else {},
            "requests": requests,
            "slow_requests": slow_requests,
        }

    # ------------------------------------------------------------ for /metrics
    def exposition_snapshot(self) -> tuple[Bucket, Bucket]:
        """(running totals: closed buckets + open ones merged; latest gauges) — copies.

        The second bucket carries only the newest gauge values (pool used/max/pending/idle,
        breaker state, runtime CPU/RSS/threads) with empty sketches and zero counters.
        """
        with self._lock:
            totals = self._totals.copy()
            for s in sorted(self._buckets):
                if s >= self._closed_upto:
                    totals.merge(self._buckets[s])
            latest = Bucket(0.0)
            for s in sorted(self._buckets):
                b = self._buckets[s]
                for k, v in b.pools.items():
                    p = latest.pools.get(k)
                    if p is None:
                        p = latest.pools[k] = PoolAgg(self._new_sketch())
                    for name in ("used", "max", "pending", "idle"):
                        val = getattr(v, name)
                        if val is not None:
                            setattr(p, name, val)
                for k, v in b.breakers.items():
                    br = latest.breakers.get(k)
                    if br is None:
                        br = latest.breakers[k] = BreakerAgg()
                    if v.state is not None:
                        br.state = v.state
                for k, v in b.runtime.items():
                    r = latest.runtime.get(k)
                    if r is None:
                        r = latest.runtime[k] = RuntimeAgg(self._new_sketch(), self._new_sketch())
                    for name in RUNTIME_GAUGES:
                        val = getattr(v, name)
                        if val is not None:
                            setattr(r, name, val)
            return totals, latest

    def counters_snapshot(self) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
        with self._lock:
            return dict(self.ingested_spans), dict(self.ingested_points), dict(self.rejected), dict(self.dropped)

    def lag_statuses(self) -> dict[tuple[str, str, int], str]:
        return {(r["group"], r["topic"], r["partition"]): r["status"] for r in self.consumer_lag()}
