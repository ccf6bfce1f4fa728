"""The collector's embedded store: time buckets of sketches, counters and series.

Usage::

    store = Store(StoreConfig(bucket_seconds=10))        # clock=time.time by default
    store.add_requests("shop", "/items/{id}", [0.012, 0.020], errors=0)
    store.endpoints("shop", window_s=60)                 # JSON-ready, shapes of CONTRACT.md
    store.flush_due()                                     # every second: close finished buckets

``Store`` is one object with one lock around every read and write, made of parts, each in
its own module with its manual:

- ``bucket_ring.BucketRing`` (``store._ring``): the buckets by arrival time, the open one,
  closing, retention; here as ``flush_due``, ``closed_through``, ``closed_buckets`` /
  ``restore_bucket`` (persistence), ``open_bucket`` / ``merge_into_open`` (graceful shutdown),
  and for the analyzer ``window(window_s, end_s=None)`` (one merged copy of a window;
  ``end_s`` in the past gives a baseline) and ``buckets(window_s)`` (the bucket list) —
  copies, safe to read without the lock.
- ``store_writes.StoreWrites``: everything the ingestor and the lag monitor record
  (``add_requests``, ``merge_dependency``, ``set_pool``, ``record_consumer_offsets``, ...),
  the cardinality caps, the spans-vs-metrics authority.
- ``kept_traces.KeptTraces`` (``store.kept``): the bounded buffer of kept traces
  (``keep_trace``, ``add_spans_to_kept_trace``, ``is_trace_kept``, ``traces``).
- ``self_monitoring.SelfMonitoring`` (``store.monitoring``): ingested / rejected / dropped
  counters (``count_*``, ``counters_snapshot``; also ``store.ingested_spans``,
  ``store.ingested_points``, ``store.rejected``, ``store.dropped``) and the agents' coverage
  reports (``set_coverage``, ``coverage``, ``blind_spots``).
- ``store_views.StoreViews``: the REST API's views (``health``, ``services``, ``endpoints``,
  ``dependencies``, ``pools``, ``queue_waits``, ``breakers``, ``consumer_lag``,
  ``breakdown``), the dashboards' series (``timeseries``, ``histogram``, ``heatmap``) and
  ``exposition_snapshot`` for ``/metrics``.

A bucket (types in ``protocol.py``) holds, per key:
``routes[(service, route)] = RouteAgg(sketch of seconds, errors)``,
``deps[(service, kind, target)] = RouteAgg``,
``breakdown[(service, route)] = BreakdownAgg`` (seconds per component for all
requests and for slow requests, request counts),
``pools[(service, kind, name)] = PoolAgg`` (latest used/max/pending/idle, wait sketch,
timeouts), ``breakers[(service, name)] = BreakerAgg`` (latest state, transitions by
target state, calls by result), ``lag[(group, topic, partition)]`` (latest offsets, lag,
time lag, status), ``runtime[service] = RuntimeAgg`` (latest CPU, run-queue wait, RSS, threads, GC pause
and event-loop lag sketches), ``queue_waits[(service, route)]`` and
``counters[(service, name, key)]`` (analyzer signals: retries, calls without timeout, calls
in transaction, DB queries per request, ...).

Configuration: ``StoreConfig`` below (defaults are the production defaults).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chokepoint.collector import lag as lag_rules
from chokepoint.collector.bucket_ring import BucketRing
from chokepoint.collector.catalog import TIMESERIES_METRICS
from chokepoint.collector.kept_traces import KeptTraces
from chokepoint.collector.protocol import BreakdownAgg, BreakerAgg, Bucket, LagPoint, PoolAgg, RouteAgg, RuntimeAgg
from chokepoint.collector.self_monitoring import COVERAGE_TTL_S, SelfMonitoring
from chokepoint.collector.sketch import DEFAULT_RELATIVE_ACCURACY, Sketch
from chokepoint.collector.store_views import HISTOGRAM_LE_MS, SLOW_FLOOR_S, StoreViews
from chokepoint.collector.store_writes import OTHER, StoreWrites

__all__ = [
    "COVERAGE_TTL_S",
    "HISTOGRAM_LE_MS",
    "OTHER",
    "SLOW_FLOOR_S",
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


class Store(StoreWrites, StoreViews):
    """The in-memory store; see the module docstring."""

    def __init__(self, config: StoreConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or StoreConfig()
        self.clock = clock
        self._lock = threading.RLock()
        self._started_s = clock()
        self._ring = BucketRing(self.config, clock)
        self.monitoring = SelfMonitoring(self._lock, clock)
        self.kept = KeptTraces(self.config, self._lock, self.monitoring.count_dropped)
        self._init_writes()
        # the counters, as attributes of the store (the same dicts)
        self.ingested_spans = self.monitoring.ingested_spans
        self.ingested_points = self.monitoring.ingested_points
        self.rejected = self.monitoring.rejected
        self.dropped = self.monitoring.dropped

    def _new_sketch(self) -> Sketch:
        return Sketch(self.config.relative_accuracy)

    # ------------------------------------------------------------ the bucket ring
    def flush_due(self) -> None:
        """Close buckets whose interval has passed (merge into totals) and drop expired ones."""
        with self._lock:
            self._ring.flush_due()

    def closed_through(self) -> float:
        """Every bucket starting before this time is closed (``-inf`` before the first close)."""
        with self._lock:
            return self._ring.closed_upto

    def closed_buckets(self, after_start: float = -math.inf) -> list[Bucket]:
        """Copies of closed buckets with ``start > after_start``, oldest first (for persistence)."""
        with self._lock:
            return self._ring.closed_buckets(after_start)

    def restore_bucket(self, bucket: Bucket) -> bool:
        """Put a persisted closed bucket back (merging with one already there); False if expired."""
        with self._lock:
            if not self._ring.restore(bucket):
                return False
            for k, lp in bucket.lag.items():
                if lp.committed_offset is not None and lp.log_end_offset is not None:
                    self._lag_samples.setdefault((*k, lp.source), deque(maxlen=256)).append(
                        lag_rules.LagSample(lp.timestamp_s, lp.committed_offset, lp.log_end_offset)
                    )
            return True

    def open_bucket(self) -> Bucket | None:
        """A copy of the bucket still being written (for a graceful shutdown), or None."""
        with self._lock:
            return self._ring.open_copy()

    def merge_into_open(self, bucket: Bucket) -> bool:
        """Merge a bucket saved at shutdown back as live data if it is still the open one; else
        restore it as a closed bucket.  Returns True when it was merged into the open bucket."""
        with self._lock:
            if not self._ring.is_open_start(bucket.start):
                self.restore_bucket(bucket)
                return False
            self._ring.open().merge(bucket)
            return True

    def buckets(self, window_s: float, end_s: float | None = None) -> list[Bucket]:
        """Copies of the buckets starting in ``[end - window, end)`` (end = now + one bucket), oldest first."""
        with self._lock:
            return [b.copy() for b in self._ring.window_list(window_s, end_s)]

    def window(self, window_s: float, end_s: float | None = None) -> Bucket:
        """One merged copy of the buckets of a window (for the analyzer; ``end_s`` for baselines)."""
        with self._lock:
            return self._ring.window(window_s, end_s)

    # ------------------------------------------------------------ kept traces
    def keep_trace(self, trace: dict) -> None:
        """Keep (or extend) a trace; dict shape of ``traces()`` items; evicts the oldest past the caps."""
        self.kept.keep(trace)

    def add_spans_to_kept_trace(self, trace_id: str, spans: list[dict]) -> bool:
        """Append spans to an already kept trace; False if the trace is not kept."""
        return self.kept.add_spans(trace_id, spans)

    def is_trace_kept(self, trace_id: str) -> bool:
        return trace_id in self.kept.by_id  # once per trace ingested: the dict itself, not a method

    def traces(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> list[dict]:
        """Kept traces, newest first; ``slow_only`` = kept because slow (not error/random)."""
        return self.kept.newest(route, slow_only, limit)

    # ------------------------------------------------------------ self-monitoring
    def count_ingested(self, protocol: str, spans: int = 0, points: int = 0) -> None:
        self.monitoring.count_ingested(protocol, spans, points)

    def count_rejected(self, protocol: str, reason: str, n: int = 1) -> None:
        self.monitoring.count_rejected(protocol, reason, n)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        self.monitoring.count_dropped(reason, n)

    def counters_snapshot(self) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
        return self.monitoring.counters_snapshot()

    def set_coverage(self, service: str, library: str, what: str, value: float, *, version: str = "", try_: str = "", instance: object = None) -> None:
        """The agent's latest coverage report for one library/what of one process (1 seen, 0 blind spot)."""
        self.monitoring.set_coverage(service, library, what, value, version=version, try_=try_, instance=instance)

    def coverage(self) -> list[dict]:
        """Every coverage report of the last ``COVERAGE_TTL_S`` seconds, worst first per service/library/what."""
        return self.monitoring.coverage()

    def blind_spots(self) -> list[dict]:
        """What an agent reported it cannot see within the last ``COVERAGE_TTL_S`` seconds."""
        return self.monitoring.blind_spots()
