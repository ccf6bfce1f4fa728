"""The store's writes: everything the ingest and the lag monitor record, into the open bucket.

Usage (methods of ``Store``; durations in seconds)::

    store.add_requests("shop", "/items/{id}", [0.012, 0.020], errors=0)
    store.merge_dependency("shop", "db", "SELECT * FROM t WHERE id = ?", sketch)
    store.set_pool("shop", "db", "main", used=4, max=10)
    store.record_consumer_offsets("orders-group", "orders", 0, 120, 150, now)

Writes: ``add_requests`` / ``merge_requests`` (route latency), ``add_dependency_calls`` /
``merge_dependency``, ``add_breakdown``, ``add_counter`` (analyzer signals), ``set_pool`` /
``add_pool_waits`` / ``merge_pool_wait`` / ``add_pool_timeouts``, ``set_breaker_state`` /
``add_breaker_transitions`` / ``add_breaker_calls``, ``set_runtime`` / ``merge_runtime_sketch``
/ ``merge_queue_wait``, ``record_consumer_offsets`` / ``record_consumer_lag``.  Each lands in
the open bucket of the ring (``bucket_ring``) under the store's lock.

- Cardinality caps (``StoreConfig``): past ``max_services`` services, and past
  ``max_routes_per_service`` routes / ``max_dependencies_per_service`` dependencies /
  ``max_pools_per_service`` pools / ``max_breakers_per_service`` breakers of a service, new
  names fold into ``"other"`` (``OTHER``); analyzer counters may have four times the
  dependency cap of keys; every folded item is counted as
  ``chokepoint_ingest_dropped_total{reason="cardinality"}``, as is a partition past
  ``max_lag_partitions``.
- Consumer lag: samples are kept per partition and source (the agent's gauges and the pull
  monitor see a partition at different moments; mixed, they would look like offset
  rewinds); the status comes from ``lag.evaluate`` over them, a missing time lag is
  interpolated from the topic's log-end history.
- Source authority (spans vs metrics): ``mark_metric_authority(service, signal)`` makes the
  service's metrics the source of ``signal`` for ``authority_ttl_s`` (300 s), and
  ``metric_authoritative`` is what the span path asks.  ``route_quantile_s`` is the route's
  quantile over ``slow_trace_window_s``, cached per bucket, for the kept-trace decision.

Relies on ``Store`` for ``config``, ``clock``, ``_lock``, ``_ring``, ``monitoring`` and
``_new_sketch``; the state it owns is set up by ``_init_writes``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from chokepoint.collector import lag as lag_rules
from chokepoint.collector.catalog import BREAKER_STATES, LAG_STATUSES
from chokepoint.collector.protocol import RUNTIME_EXTRA_GAUGES, BreakdownAgg, BreakerAgg, LagPoint, PoolAgg, RouteAgg, RuntimeAgg
from chokepoint.collector.sketch import Sketch

OTHER = "other"


class StoreWrites:
    """The write half of ``Store``; see the module docstring."""

    def _init_writes(self) -> None:
        self._services: set[str] = set()
        self._names: dict[tuple[str, str], set[str]] = {}  # (service, "route"|"dep"|"pool"|"breaker") -> names
        # samples per (group, topic, partition, source): the agent and the pull monitor see the
        # same partition at different moments; mixing them would look like offset rewinds
        self._lag_samples: dict[tuple[str, str, int, str], deque[lag_rules.LagSample]] = {}
        self._lag_latest: dict[tuple[str, str, int, str], LagPoint] = {}  # newest point per partition and source
        self._log_end_history: dict[tuple[str, int], deque[tuple[float, int]]] = {}
        self._consumer_services: dict[tuple[str, str], str] = {}  # (group, topic) -> the consumer process's service
        self._authority: dict[tuple[str, str], float] = {}
        self._p99_cache: dict[tuple[str, str, float], tuple[float, float | None]] = {}

    # ------------------------------------------------------------ cardinality
    def _service(self, service: str) -> str:
        if service in self._services:
            return service
        if len(self._services) >= self.config.max_services:
            self.monitoring.count_dropped("cardinality")
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
            self.monitoring.count_dropped("cardinality")
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
            agg = self._latency_agg(self._ring.open().routes, self._route_key(service, route))
            agg.sketch.add_many(durations_s)
            agg.errors += errors

    def merge_requests(self, service: str, route: str, sketch: Sketch, errors: int = 0) -> None:
        """Merge a latency sketch (seconds) of one route (from a histogram metric)."""
        with self._lock:
            agg = self._latency_agg(self._ring.open().routes, self._route_key(service, route))
            agg.sketch.merge(sketch)
            agg.errors += errors

    def add_dependency_calls(self, service: str, kind: str, target: str, durations_s: Iterable[float], errors: int = 0) -> None:
        with self._lock:
            agg = self._latency_agg(self._ring.open().deps, self._dep_key(service, kind, target))
            agg.sketch.add_many(durations_s)
            agg.errors += errors

    def merge_dependency(self, service: str, kind: str, target: str, sketch: Sketch, errors: int = 0) -> None:
        with self._lock:
            agg = self._latency_agg(self._ring.open().deps, self._dep_key(service, kind, target))
            agg.sketch.merge(sketch)
            agg.errors += errors

    def add_breakdown(self, service: str, route: str, component_seconds: dict[str, float], slow: bool = False, requests: int = 0) -> None:
        """Add per-component seconds of a route; ``requests`` = requests they cover (0 if unknown)."""
        with self._lock:
            key = self._route_key(service, route)
            bd = self._ring.open().breakdown
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
            counters = self._ring.open().counters
            ck = (service, name, key)
            counters[ck] = counters.get(ck, 0.0) + value

    # ------------------------------------------------------------ writes: pools, breakers, runtime
    def _pool(self, service: str, kind: str, name: str) -> PoolAgg:
        key = self._pool_key(service, kind, name)
        pools = self._ring.open().pools
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
            _set_given(self._pool(service, kind, name), processes=processes, used=used, max=max, pending=pending, idle=idle)

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
        brs = self._ring.open().breakers
        b = brs.get(key)
        if b is None:
            b = brs[key] = BreakerAgg()
        b.updated_s = self.clock()
        return b

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
        rt = self._ring.open().runtime
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
            _set_given(self._runtime(service), cpu=cpu, run_queue_wait=run_queue_wait, rss=rss, threads=threads, **extra)

    def merge_queue_wait(self, service: str, route: str, sketch: Sketch) -> None:
        """Waits (s) before the server saw a request (``X-Request-Start`` → server span start)."""
        with self._lock:
            self._latency_agg(self._ring.open().queue_waits, self._route_key(service, route)).sketch.merge(sketch)

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
                self.monitoring.count_dropped("cardinality")
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
            self._ring.open().lag[key] = self._lag_latest[skey] = LagPoint(
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
                self.monitoring.count_dropped("cardinality")
                return
            lp = self._ring.open().lag.get(key)
            if lp is None or lp.source != source:
                lp = self._ring.open().lag[key] = LagPoint(source=source)
            self._lag_latest[skey] = lp
            if lag is not None:
                lp.lag = float(lag)
                lp.status = LAG_STATUSES[4] if lag < 0 else lp.status
            if time_lag_s is not None:
                lp.time_lag_s = float(time_lag_s)
            lp.timestamp_s = timestamp_s

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
        now_bucket = self._ring.bucket_start(self.clock())
        cached = self._p99_cache.get(key)
        if cached is not None and cached[0] == now_bucket:
            return cached[1]
        with self._lock:
            s = self._new_sketch()
            for b in self._ring.window_list(self.config.slow_trace_window_s):
                agg = b.routes.get((service, route))
                if agg is not None:
                    s.merge(agg.sketch)
            value = s.quantile(q) if s.count >= self.config.slow_trace_min_count else None
            if value is not None:  # unknown stays uncached: the route may reach the minimum any moment
                if len(self._p99_cache) > 10 * self.config.max_routes_per_service:
                    self._p99_cache.clear()
                self._p99_cache[key] = (now_bucket, value)
            return value


def _set_given(agg: object, **values: float | None) -> None:
    """Set the latest gauges that were given (None leaves the one already there)."""
    for name, v in values.items():
        if v is not None:
            setattr(agg, name, v)
