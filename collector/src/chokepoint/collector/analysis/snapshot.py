"""One typed view of the analysis window (``WindowSnapshot``), built from the store in one place.

The rules read nothing else: every number a rule judges is a field here, so a rule is a
pure function of a snapshot and its tests build snapshots by hand
(``WindowSnapshot(services={...}, pools=[...])``).  ``build_snapshot(source, config)``
reads an ``AnalyzerSource`` (the embedded ``Store`` is one) once per analysis:

- per service (``ServiceSnapshot``): request count and time, whether it is degraded (a
  route's p99 above ``degraded_p99_ms`` or ``degraded_ratio`` × its baseline), the worst
  route, the share of the slow requests' time by breakdown component (``self``, ``db``,
  ``pool_wait``, ``http:<host>``, ``kafka``, ``queue``), and per route
  (``RouteStats``: count, time, p50/p99 and the baseline p99);
- dependencies (``DependencyStats`` by ``(service, kind, target)``; a DB target says
  whether it is a statement, ``statements.statement_kind``);
- pools (``PoolStats``: kind ``db`` / ``worker`` / ``http`` / ``redis``; wait p99 and
  checkouts over the window; ``used`` and ``pending`` as means over the latest third of
  the window, the pool's state now, as for CPU (a window mean trails a pool that filled up
  by half a window); ``used_peak``/``pending_peak`` the window's extremes beside the wait
  p99; ``max`` the latest size);
- breakers (``BreakerStats``), consumer lag per group and topic (``ConsumerLagStats``,
  with the consumer process's own service when an instrumented consumer reported it);
- per service runtime (``RuntimeStats``): CPU used and run-queue wait (means over the
  latest third of the window), RSS series, GC pause and GC CPU time, event-loop lag,
  busy share and longest stall, accept backlog and accept rate, and when the store first
  saw the process (its age: the first minutes are a warm-up);
- the analyzer counters (``counters[(service, signal, key)]``: retries, calls without
  timeout, calls in a transaction, DB queries per request, response sizes, repeated reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.statements import is_statement


class AnalyzerSource(Protocol):
    """What the analyzer reads (``Store`` implements it)."""

    def clock(self) -> float: ...
    def window(self, window_s: float, end_s: float | None = None): ...
    def buckets(self, window_s: float, end_s: float | None = None) -> list: ...
    def pools(self, window_s: float = 60) -> list[dict]: ...
    def breakers(self, window_s: float = 60) -> list[dict]: ...
    def consumer_lag(self) -> list[dict]: ...


def ms(seconds: float | None) -> float:
    """Seconds → milliseconds, one decimal (``None`` → 0)."""
    return round((seconds or 0.0) * 1000.0, 1)


@dataclass
class RouteStats:
    count: int = 0
    time_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    baseline_p99_ms: float | None = None  # the best per-bucket p99 before the window
    errors: int = 0
    queue_s: float = 0.0  # time its requests waited for a worker (breakdown ``queue``; 0 without a breakdown)

    @property
    def busy_s(self) -> float:
        """Time its requests held a worker: request time less the queueing for one."""
        return max(self.time_s - self.queue_s, 0.0)


@dataclass
class DependencyStats:
    count: int = 0
    time_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    statement: bool = True  # DB: a statement (not connect / a transaction span / schema); others: True


@dataclass
class ServiceSnapshot:
    """Per-service numbers the rules share."""

    name: str
    requests: int = 0
    request_time_s: float = 0.0
    degraded: bool = False
    slow_share: dict[str, float] = field(default_factory=dict)  # component -> share of slow requests' time
    has_breakdown: bool = False
    worst_route: str = ""
    worst_p99_ms: float = 0.0
    routes: dict[str, RouteStats] = field(default_factory=dict)
    self_time_s: float = 0.0  # breakdown "self" seconds over all requests in the window
    queue_wait_count: int = 0  # requests with a proxy's X-Request-Start (the wait before the server saw them)
    queue_wait_p99_ms: float = 0.0
    breakdown_requests: int = 0  # requests the breakdown counted (0: a metric-fed breakdown)

    def share(self, component: str) -> float:
        return self.slow_share.get(component, 0.0)

    def share_prefix(self, prefix: str) -> float:
        return sum(v for k, v in self.slow_share.items() if k == prefix or k.startswith(prefix + ":"))

    def busy_share(self, component: str, prefix: bool = False) -> float:
        """Share of the slow requests' time *in a worker* (``queue`` left out).

        Time queued for a worker is a consequence of what the busy workers do: a slow
        query that holds every thread also makes the next requests queue.  So a cause
        is credited with its share of the in-worker time, which is its own share plus
        the queueing attributed to it in proportion.
        """
        own = self.share_prefix(component) if prefix else self.share(component)
        rest = 1.0 - self.share("queue")
        return min(1.0, own / rest) if rest > 1e-9 else 0.0


@dataclass
class PoolStats:
    service: str
    kind: str  # catalog.POOL_KINDS
    name: str
    used: float | None = None  # mean over the latest third of the window (of each bucket's latest value)
    max: float | None = None  # capacity now, the latest value (a worker pool with ``processes``: threads per process)
    pending: float | None = None  # mean over the latest third of the window
    idle: float | None = None  # latest
    wait_p99_ms: float = 0.0  # over the window
    wait_count: int = 0
    timeouts: float = 0.0
    processes: int | None = None  # worker pools: processes serving the service (gunicorn workers), each with ``max`` threads
    used_peak: float | None = None  # the largest ``used`` in the window (beside a wait p99: the same extreme)
    pending_peak: float | None = None

    @property
    def capacity(self) -> float:
        """Members in all: ``max``, times ``processes`` for a pre-fork worker pool."""
        return (self.max or 0.0) * (self.processes or 1)


@dataclass
class BreakerStats:
    service: str
    name: str
    state: str = "closed"
    rejected: float = 0.0
    calls: float = 0.0
    error_rate: float = 0.0
    transitions: float = 0.0


@dataclass
class ConsumerLagStats:
    group: str
    topic: str
    lag: float = 0.0
    time_lag_s: float = 0.0
    growth: float = 0.0  # lag now minus the lag when the window (twice its length) first saw the group
    statuses: tuple[str, ...] = ()
    partitions: int = 0
    service: str | None = None  # the consumer process's service (None: only the broker's view, no instrumented consumer)


@dataclass
class RuntimeStats:
    cpu: float | None = None  # CPU used, fraction of a core (mean over the latest third of the window)
    run_queue_wait: float | None = None  # runnable but waiting for a CPU, fraction of a core (same stretch)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (bucket start, bytes), oldest first
    gc_pause_s: float = 0.0  # wall-clock GC pause time in the window
    gc_pause_count: int = 0
    gc_cpu: float | None = None  # CPU seconds per second spent in GC (mean over the window; None: not reported)
    loop_lag_count: int = 0
    loop_lag_p99_ms: float = 0.0
    loop_late_fraction: float = 0.0  # share of loop-lag samples later than ``loop_late_s``
    loop_busy: float | None = None  # fraction of wall time the loop ran without yielding (mean over the latest third)
    loop_stall_max_s: float | None = None  # longest single stall in the window
    accept_backlog: float | None = None  # connections waiting in the listen queue, all processes (mean over the window)
    accept_backlog_max: float | None = None  # the listen() backlog limit
    accept_rate: float | None = None  # connections accepted per second (mean over the window)
    first_seen_s: float | None = None  # the earliest bucket (window + baseline) with this process's runtime, or its restart (RSS drop)

    def age_s(self, now: float) -> float | None:
        return None if self.first_seen_s is None else now - self.first_seen_s


@dataclass
class WindowSnapshot:
    """Everything the rules read about one analysis window."""

    now: float = 0.0
    window_s: float = 60.0
    config: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    services: dict[str, ServiceSnapshot] = field(default_factory=dict)
    deps: dict[tuple[str, str, str], DependencyStats] = field(default_factory=dict)  # (service, kind, target)
    pools: list[PoolStats] = field(default_factory=list)
    breakers: list[BreakerStats] = field(default_factory=list)
    lags: list[ConsumerLagStats] = field(default_factory=list)
    runtime: dict[str, RuntimeStats] = field(default_factory=dict)
    counters: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (service, signal, key)

    def service(self, name: str) -> ServiceSnapshot:
        """The service's numbers (an empty ``ServiceSnapshot`` for one that served no request)."""
        return self.services.get(name) or ServiceSnapshot(name)

    def counter(self, service: str, name: str, key: str | None = None) -> float:
        if key is not None:
            return self.counters.get((service, name, key), 0.0)
        return sum(v for (s, n, _), v in self.counters.items() if s == service and n == name)

    def counters_by_key(self, name: str) -> dict[tuple[str, str], float]:
        return {(s, k): v for (s, n, k), v in self.counters.items() if n == name}

    def means_by_key(self, signal: str, min_count: float = 3) -> dict[tuple[str, str], tuple[float, float, float]]:
        """``{(service, key): (mean, count, sum)}`` of a histogram counted as ``signal.sum`` / ``signal.count``."""
        counts = self.counters_by_key(signal + ".count")
        out = {}
        for k, total in self.counters_by_key(signal + ".sum").items():
            n = counts.get(k, 0.0)
            if n >= min_count:
                out[k] = (total / n, n, total)
        return out

    def deps_of(self, service: str, kind: str) -> list[tuple[str, DependencyStats]]:
        return [(t, d) for (s, k, t), d in self.deps.items() if s == service and k == kind and d.count > 0]

    def statements_of(self, service: str) -> list[tuple[str, DependencyStats]]:
        """The service's DB statements (connection, transaction and schema spans left out)."""
        return [(t, d) for t, d in self.deps_of(service, "db") if d.statement]

    def pools_of(self, service: str, kind: str) -> list[PoolStats]:
        return [p for p in self.pools if p.service == service and p.kind == kind]


# ---------------------------------------------------------------- building one from the store


def build_snapshot(source: AnalyzerSource, config: AnalyzerConfig) -> WindowSnapshot:
    """Read the window, its baseline and the latest state from ``source``, once."""
    now = source.clock()
    cur = source.window(config.window_s)
    buckets = source.buckets(config.window_s)
    base_buckets = source.buckets(config.baseline_window_s, end_s=now - config.window_s)
    snap = WindowSnapshot(now=now, window_s=config.window_s, config=config)
    snap.counters = dict(cur.counters)
    for (svc, kind, target), agg in cur.deps.items():
        snap.deps[(svc, kind, target)] = DependencyStats(
            agg.count,
            agg.sketch.sum,
            ms(agg.sketch.quantile(0.5)) if agg.count else 0.0,
            ms(agg.sketch.quantile(0.99)) if agg.count else 0.0,
            agg.errors,
            statement=kind != "db" or is_statement(target),
        )
    _services(snap, cur, base_buckets)
    for (svc, _route), agg in getattr(cur, "queue_waits", {}).items():
        if svc in snap.services and agg.count:
            sv = snap.services[svc]
            sv.queue_wait_count += agg.count
            sv.queue_wait_p99_ms = max(sv.queue_wait_p99_ms, ms(agg.sketch.quantile(0.99)))
    snap.pools = [_pool(p, buckets) for p in source.pools(config.window_s)]
    snap.breakers = [_breaker(b) for b in source.breakers(config.window_s)]
    snap.lags = _lags(source.consumer_lag(), source.buckets(config.window_s * 2))
    snap.runtime = _runtime(cur, buckets, base_buckets, config)
    return snap


def _baseline_p99(base_buckets: list, key: tuple[str, str]) -> float | None:
    """The best (lowest) per-bucket p99 before the window.

    The best recent bucket, not the merged baseline, so a problem that started inside the
    baseline period does not raise the bar it is measured against."""
    p99s = [ms(a.sketch.quantile(0.99)) for b in base_buckets if (a := b.routes.get(key)) is not None and a.count >= 5]
    return min(p99s) if p99s else None


def _services(snap: WindowSnapshot, cur, base_buckets: list) -> None:
    cfg = snap.config
    for (svc, route), agg in cur.routes.items():
        sv = snap.services.setdefault(svc, ServiceSnapshot(svc))
        p99 = ms(agg.sketch.quantile(0.99)) if agg.count else 0.0
        base = _baseline_p99(base_buckets, (svc, route))
        sv.routes[route] = RouteStats(agg.count, agg.sketch.sum, ms(agg.sketch.quantile(0.5)) if agg.count else 0.0, p99, base, agg.errors)
        sv.requests += agg.count
        sv.request_time_s += agg.sketch.sum
        if agg.count >= max(3, cfg.min_requests // 4) and (p99 >= cfg.degraded_p99_ms or (base and p99 >= cfg.degraded_ratio * base and p99 >= 20)):
            sv.degraded = True
        if p99 > sv.worst_p99_ms and agg.count >= 3:
            sv.worst_p99_ms, sv.worst_route = p99, route
    for svc, sv in snap.services.items():
        slow: dict[str, float] = {}
        everything: dict[str, float] = {}
        for (s, route), b in cur.breakdown.items():
            if s != svc:
                continue
            if route in sv.routes:
                sv.routes[route].queue_s = b.all.get("queue", 0.0)
            for c, v in b.slow.items():
                slow[c] = slow.get(c, 0.0) + v
            for c, v in b.all.items():
                everything[c] = everything.get(c, 0.0) + v
            sv.breakdown_requests += b.requests
        sv.self_time_s = everything.get("self", 0.0)
        shares = slow if sum(slow.values()) > 0 else everything
        total = sum(shares.values())
        if total > 0:
            sv.has_breakdown = True
            sv.slow_share = {c: v / total for c, v in shares.items()}
        elif sv.request_time_s > 0:
            # no breakdown from this service: dependency time over request time
            for (s, kind, target), dep in snap.deps.items():
                if s == svc:
                    comp = f"http:{target}" if kind == "http" else kind
                    sv.slow_share[comp] = sv.slow_share.get(comp, 0.0) + min(1.0, dep.time_s / sv.request_time_s)


def _recent_gauge(values: Iterable[float | None], latest: float | None) -> float | None:
    """A gauge's state now: the mean of its latest third in the window (one value per bucket,
    :func:`_recent_mean`); the latest gauge when the window has none."""
    mean = _recent_mean(v for v in values if v is not None)
    return latest if mean is None else round(mean, 1)


def _peak(values: Iterable[float | None], latest: float | None) -> float | None:
    seen = [v for v in values if v is not None]
    return max(seen) if seen else latest


def _latest(values: Iterable[float | None], latest: float | None) -> float | None:
    """The newest value seen in the window (a pool's size now: it may have been resized)."""
    seen = [v for v in values if v is not None]
    return seen[-1] if seen else latest


def _pool(p: dict, buckets: list) -> PoolStats:
    key = (p["service"], p["kind"], p["name"])
    in_window = [a for b in buckets if (a := b.pools.get(key)) is not None]
    return PoolStats(
        service=p["service"],
        kind=p["kind"],
        name=p["name"],
        used=_recent_gauge((a.used for a in in_window), p.get("used")),
        max=_latest((a.max for a in in_window), p.get("max")),
        pending=_recent_gauge((a.pending for a in in_window), p.get("pending")),
        used_peak=_peak((a.used for a in in_window), p.get("used")),
        pending_peak=_peak((a.pending for a in in_window), p.get("pending")),
        idle=p.get("idle"),
        wait_p99_ms=p.get("wait_p99_ms") or 0.0,
        wait_count=int(p.get("wait_count") or 0),
        timeouts=p.get("timeouts") or 0.0,
        processes=int(p["processes"]) if p.get("processes") else None,
    )


def _breaker(b: dict) -> BreakerStats:
    return BreakerStats(
        service=b["service"],
        name=b["name"],
        state=b.get("state") or "closed",
        rejected=b.get("rejected") or 0.0,
        calls=sum((b.get("calls") or {}).values()),
        error_rate=b.get("error_rate") or 0.0,
        transitions=b.get("transitions") or 0.0,
    )


def _lags(rows: list[dict], history: list) -> list[ConsumerLagStats]:
    groups: dict[tuple[str, str], ConsumerLagStats] = {}
    statuses: dict[tuple[str, str], set[str]] = {}
    for p in rows:
        key = (p["group"], p["topic"])
        g = groups.setdefault(key, ConsumerLagStats(*key))
        g.lag += p.get("lag") or 0.0
        g.time_lag_s = max(g.time_lag_s, p.get("time_lag_s") or 0.0)
        statuses.setdefault(key, set()).add(p.get("status") or "OK")
        g.service = g.service or p.get("service")
        g.partitions += 1
    earliest: dict[tuple[str, str], float] = {}
    for b in history:  # oldest first: the first bucket that saw the group sets its starting lag
        per_group: dict[tuple[str, str], float] = {}
        for (group, topic, _partition), lp in b.lag.items():
            if lp.lag is not None:
                per_group[(group, topic)] = per_group.get((group, topic), 0.0) + lp.lag
        for k, lag in per_group.items():
            earliest.setdefault(k, lag)
    for key, g in groups.items():
        g.growth = g.lag - earliest.get(key, g.lag)
        g.statuses = tuple(sorted(statuses[key]))
    return list(groups.values())


def _series(buckets: list, service: str, attr: str) -> list[tuple[float, float]]:
    out = []
    for b in buckets:
        r = b.runtime.get(service)
        v = getattr(r, attr, None) if r is not None else None
        if v is not None:
            out.append((b.start, float(v)))
    return out


RESTART_RSS_RATIO = 0.6  # an RSS below this share of the previous sample: a new process (CPython seldom returns that much at once)


def _process_start(rss: list[tuple[float, float]]) -> float | None:
    """When the service's process last restarted, as its RSS series shows it: a sharp drop the
    series never climbs back from (the RSS of two processes reporting in turn is no restart);
    None if not seen."""
    peak_after = rss[-1][1] if rss else 0.0
    for (_, before), (t, now) in reversed(list(pairwise(rss[:-1]))):  # a drop needs a later sample to show it holds
        peak_after = max(peak_after, now)
        if peak_after < RESTART_RSS_RATIO * before:
            return t
    return None


def _recent_mean(values: Iterable[float]) -> float | None:
    """Mean over the latest third of the values (at least three).

    A gauge is a state: its mean over the whole window trails a change by half a window
    (a process CPU-bound for 20 s of a 60 s window still averages a third of its use)."""
    values = list(values)
    if not values:
        return None
    recent = values[-max(3, len(values) // 3) :]
    return sum(recent) / len(recent)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _runtime(cur, buckets: list, base_buckets: list, config: AnalyzerConfig) -> dict[str, RuntimeStats]:
    out: dict[str, RuntimeStats] = {}
    for svc in {s for b in buckets for s in b.runtime} | set(cur.runtime):
        stalls = [v for _, v in _series(buckets, svc, "loop_stall_max")]
        backlog_max = [v for _, v in _series(buckets, svc, "accept_backlog_max")]
        rt = RuntimeStats(
            cpu=_recent_mean(v for _, v in _series(buckets, svc, "cpu")),
            run_queue_wait=_recent_mean(v for _, v in _series(buckets, svc, "run_queue_wait")),
            rss=_series(buckets, svc, "rss"),
            gc_cpu=_mean(v for _, v in _series(buckets, svc, "gc_cpu")),
            loop_busy=_recent_mean(v for _, v in _series(buckets, svc, "loop_busy")),
            loop_stall_max_s=max(stalls) if stalls else None,
            accept_backlog=_mean(v for _, v in _series(buckets, svc, "accept_backlog")),
            accept_backlog_max=backlog_max[-1] if backlog_max else None,
            accept_rate=_mean(v for _, v in _series(buckets, svc, "accept_rate")),
            first_seen_s=_process_start(_series([*base_buckets, *buckets], svc, "rss"))
            or min((b.start for b in [*base_buckets, *buckets] if svc in b.runtime), default=None),
        )
        agg = cur.runtime.get(svc)
        if agg is not None:
            rt.gc_pause_s, rt.gc_pause_count = (agg.gc_pause.sum, agg.gc_pause.count) if agg.gc_pause.count else (0.0, 0)
            if agg.loop_lag.count:
                rt.loop_lag_count = agg.loop_lag.count
                rt.loop_lag_p99_ms = ms(agg.loop_lag.quantile(0.99))
                rt.loop_late_fraction = 1.0 - agg.loop_lag.count_le(config.loop_late_s) / agg.loop_lag.count
        out[svc] = rt
    return out
