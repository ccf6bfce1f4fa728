"""The bottleneck analyzer: names the likely bottleneck, with evidence and the fix.

A pure component over a data source (``AnalyzerSource``; the embedded ``Store`` is one,
a Prometheus-backed source can be another).  Every ``interval_s`` the service calls
``Analyzer.analyze()``; it reads the recent window (``window_s``, default 60 s) and a
baseline before it, runs one rule per finding kind (the vocabulary of
``catalog.FINDING_KINDS``) and returns ``Finding`` objects ranked best first.

How a finding is scored
-----------------------
Each rule produces a candidate with two numbers in 0..1:

- ``explained``: how much of the **slow requests' time** the cause accounts for, from the
  per-request breakdown the agent reports for 100% of requests (components ``self``,
  ``db``, ``pool_wait``, ``http:<host>``, ``kafka``, ``queue``).  When a service sends no
  breakdown (a foreign OpenTelemetry SDK), dependency time relative to request time is
  used instead.  Time queued for a worker (``queue``) is a consequence of what the busy
  workers do, so causes are credited with their share of the *in-worker* time
  (``ServiceView.busy_share``); the worker pool itself explains the queueing only in
  proportion to the app's own (``self``) time, i.e. waits the agent cannot see.
- ``strength``: how far the direct evidence is past its threshold (pool wait p99 vs
  200 ms, CPU demand vs one core, loop lag vs 500 ms, lag growth, ...).

CPU demand
----------
``process.cpu.utilization`` is the CPU a process *got*; on a host shared with the load
generator, the database and other services a CPU-bound process gets less than a core.
The agent also reports ``chokepoint.runtime.cpu.run_queue_wait``: the time its threads
were runnable but waiting for a CPU.  ``demand = used + waited`` (fractions of one
core) is what it *wants*; a CPython process whose demand is near one core is CPU-bound
(the GIL lets one thread compute at a time) even when the box gives it 0.6 core.
Both are means over the latest third of the window (a state trails a change by half the
window when averaged over all of it).  ``cpu_saturation`` fires on demand ≥ ``cpu_busy``
when the process uses at least ``cpu_demand_min_used`` itself (a process that mostly
sleeps and waits a little at each wake-up is not CPU-bound), on utilization ≥
``cpu_busy``, or, without the wait signal
(other SDKs, non-Linux), on utilization ≥ ``cpu_contended`` when the app's own time per
request is mostly CPU time.  (Threads contending for the GIL wake every switch interval
and wait for a CPU each time, so on a busy host the wait can exceed a core: it then
counts threads waiting, and the summary says "more than a core".)  The same test keeps
``worker_pool_saturation`` quiet (more threads do not help a CPU-bound process), and a
CPU-bound process is named ahead of the loop lag, busy workers and hot route it causes.
A loop that lags while the service's requests stay fast (an idle service on a busy
host waiting for a CPU now and then) is no ``event_loop_blocked``.

``score = 0.55 * explained + 0.45 * strength`` plus a small ``specificity`` bonus for
the more specific explanation of the same symptom (an external call inside a
transaction explains an exhausted pool better than "the pool is too small"; a missing
timeout or a retry loop explains a slow dependency's damage better than "the
dependency is slow"; a hot endpoint explains a busy worker pool).  Severity:
``critical`` ≥ 0.7, ``warning`` ≥ 0.4, else ``info``.  Rules only fire past their gates,
so a healthy service under light load yields nothing above ``info``.

Thresholds (``AnalyzerConfig``) encode what an engineer does under a load test (see
the project's domain notes): CPU near one core → processes, not threads; workers all
busy with CPU low → more threads; waiting for connections while queries are fast →
bigger pool; and so on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from chokepoint.collector.catalog import FINDINGS_BY_KIND
from chokepoint.instrument import signals as sig


class AnalyzerSource(Protocol):
    """What the analyzer reads (``Store`` implements it)."""

    def clock(self) -> float: ...
    def window(self, window_s: float, end_s: float | None = None): ...
    def buckets(self, window_s: float, end_s: float | None = None) -> list: ...
    def pools(self, window_s: float = 60) -> list[dict]: ...
    def breakers(self, window_s: float = 60) -> list[dict]: ...
    def consumer_lag(self) -> list[dict]: ...


@dataclass
class AnalyzerConfig:
    """Thresholds; defaults are for production traffic (tests shorten the windows)."""

    window_s: float = 60.0
    baseline_window_s: float = 300.0
    min_requests: int = 20  # per service in the window before latency rules judge it
    degraded_p99_ms: float = 100.0  # a route is "slow" above this p99 ...
    degraded_ratio: float = 2.0  # ... or this many times its baseline p99
    pool_wait_p99_ms: float = 20.0
    pool_min_waits: int = 20  # checkouts in the window before a slow p99 alone means saturation
    worker_queue_wait_p99_ms: float = 20.0
    cpu_busy: float = 0.85  # fraction of one core: CPU used, or CPU demand (used + run-queue wait)
    cpu_demand_min_used: float = 0.3  # run-queue wait counts as demand only when the process uses this much itself
    cpu_contended: float = 0.5  # ... or this much used, when the app's own time is mostly computing
    compute_ratio: float = 0.25  # CPU seconds per request / self seconds per request
    cpu_low: float = 0.6
    loop_lag_p99_ms: float = 50.0
    loop_late_s: float = 0.010  # a timer this late found the loop busy (2 x the 5 ms GIL switch interval)
    loop_busy_fraction: float = 0.25  # found busy this often, the loop's p99 stall explains the slow requests in full
    slow_query_p99_ms: float = 50.0
    slow_query_min_calls: int = 5  # in the window: a one-off statement (schema, seed, batch) is no request bottleneck
    n_plus_one_queries: float = 8.0  # mean queries per request
    dependency_share: float = 0.3  # share of slow time for a slow dependency
    dependency_p99_ms: float = 100.0
    retry_ratio: float = 0.2  # retries per call
    hot_share: float = 0.6  # share of a service's busy time
    lag_min_messages: float = 100.0
    rss_growth_mb_per_min: float = 30.0
    gc_time_fraction: float = 0.05
    large_response_bytes: float = 100_000.0
    repeated_read_ratio: float = 0.5
    repeated_read_rps: float = 2.0


@dataclass
class Finding:
    kind: str
    service: str
    target: str
    score: float
    severity: str
    since: str
    summary: str
    evidence: dict
    recommendation: str

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "service": self.service,
            "target": self.target,
            "score": self.score,
            "severity": self.severity,
            "since": self.since,
            "summary": self.summary,
            "evidence": self.evidence,
            "recommendation": self.recommendation,
        }


@dataclass
class Candidate:
    kind: str
    service: str
    target: str
    explained: float
    strength: float
    summary: str
    evidence: dict
    recommendation: str = ""
    specificity: float = 0.0

    @property
    def score(self) -> float:
        raw = 0.55 * _clamp(self.explained) + 0.45 * _clamp(self.strength) + self.specificity
        return round(_clamp(raw), 3)


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x != x else max(lo, min(hi, x))  # NaN -> lo


def severity_of(score: float) -> str:
    return "critical" if score >= 0.7 else "warning" if score >= 0.4 else "info"


def _ms(seconds: float | None) -> float:
    return round((seconds or 0.0) * 1000.0, 1)


# ---------------------------------------------------------------- the window view


@dataclass
class ServiceView:
    """Per-service numbers the rules share (computed once per analysis)."""

    name: str
    requests: int = 0
    request_time_s: float = 0.0
    degraded: bool = False
    slow_share: dict[str, float] = field(default_factory=dict)  # component -> share of slow requests' time
    has_breakdown: bool = False
    worst_route: str = ""
    worst_p99_ms: float = 0.0

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


class WindowView:
    """The current window, its baseline and the latest state, as the rules read them."""

    def __init__(self, source: AnalyzerSource, config: AnalyzerConfig) -> None:
        self.config = config
        self.now = source.clock()
        self.window_s = config.window_s
        self.cur = source.window(config.window_s)
        self.base_buckets = source.buckets(config.baseline_window_s, end_s=self.now - config.window_s)
        self._base_p99: dict[tuple[str, str], float | None] = {}
        self.buckets = source.buckets(config.window_s)
        self.pools = source.pools(config.window_s)
        self.breakers = source.breakers(config.window_s)
        self.lags = source.consumer_lag()
        self.lag_history = source.buckets(config.window_s * 2)
        self.services: dict[str, ServiceView] = {}
        self._build_services()

    def counter(self, service: str, name: str, key: str | None = None) -> float:
        if key is not None:
            return self.cur.counters.get((service, name, key), 0.0)
        return sum(v for (s, n, _), v in self.cur.counters.items() if s == service and n == name)

    def counters_by_key(self, name: str) -> dict[tuple[str, str], float]:
        return {(s, k): v for (s, n, k), v in self.cur.counters.items() if n == name}

    def route_p99_ms(self, service: str, route: str, baseline: bool = False) -> float | None:
        """p99 in the window; with ``baseline``, the best (lowest) per-bucket p99 before it.

        The best recent bucket, not the merged baseline, so a problem that started inside
        the baseline period does not raise the bar it is measured against.
        """
        if not baseline:
            agg = self.cur.routes.get((service, route))
            return _ms(agg.sketch.quantile(0.99)) if agg is not None and agg.count else None
        key = (service, route)
        if key not in self._base_p99:
            p99s = [_ms(a.sketch.quantile(0.99)) for b in self.base_buckets if (a := b.routes.get(key)) is not None and a.count >= 5]
            self._base_p99[key] = min(p99s) if p99s else None
        return self._base_p99[key]

    def _build_services(self) -> None:
        cfg = self.config
        for (svc, route), agg in self.cur.routes.items():
            sv = self.services.setdefault(svc, ServiceView(svc))
            sv.requests += agg.count
            sv.request_time_s += agg.sketch.sum
            p99 = _ms(agg.sketch.quantile(0.99))
            base = self.route_p99_ms(svc, route, baseline=True)
            if agg.count >= max(3, cfg.min_requests // 4) and (p99 >= cfg.degraded_p99_ms or (base and p99 >= cfg.degraded_ratio * base and p99 >= 20)):
                sv.degraded = True
            if p99 > sv.worst_p99_ms and agg.count >= 3:
                sv.worst_p99_ms, sv.worst_route = p99, route
        # slow requests' time by component (fallback: all requests')
        for svc, sv in self.services.items():
            slow: dict[str, float] = {}
            everything: dict[str, float] = {}
            for (s, _route), b in self.cur.breakdown.items():
                if s != svc:
                    continue
                for c, v in b.slow.items():
                    slow[c] = slow.get(c, 0.0) + v
                for c, v in b.all.items():
                    everything[c] = everything.get(c, 0.0) + v
            source = slow if sum(slow.values()) > 0 else everything
            total = sum(source.values())
            if total > 0:
                sv.has_breakdown = True
                sv.slow_share = {c: v / total for c, v in source.items()}
            elif sv.request_time_s > 0:
                # no breakdown from this service: dependency time over request time
                for (s, kind, target), dep in self.cur.deps.items():
                    if s == svc:
                        comp = f"http:{target}" if kind == "http" else kind
                        sv.slow_share[comp] = sv.slow_share.get(comp, 0.0) + min(1.0, dep.sketch.sum / sv.request_time_s)

    def deps_of(self, service: str, kind: str) -> list[tuple[str, object]]:
        return [(t, agg) for (s, k, t), agg in self.cur.deps.items() if s == service and k == kind and agg.count > 0]

    def recent_runtime_mean(self, service: str, attr: str) -> float | None:
        """Mean of a runtime gauge over the latest third of the window (at least three values).

        A gauge is a state: its mean over the whole window trails a change by half a window
        (a process CPU-bound for 20 s of a 60 s window still averages a third of its use).
        """
        values = [x for _, x in self.runtime_series(service, attr)]
        if not values:
            return None
        recent = values[-max(3, len(values) // 3) :]
        return sum(recent) / len(recent)

    def runtime_series(self, service: str, attr: str) -> list[tuple[float, float]]:
        out = []
        for b in self.buckets:
            r = b.runtime.get(service)
            v = getattr(r, attr, None) if r is not None else None
            if v is not None:
                out.append((b.start, float(v)))
        return out


# ---------------------------------------------------------------- rules


def _rec(kind: str, extra: str = "") -> str:
    base = FINDINGS_BY_KIND[kind].recommendation
    return f"{base}. {extra}".strip() if extra else base


def rule_db_pool_saturation(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for p in v.pools:
        if p["kind"] != "db":
            continue
        wait_p99 = p.get("wait_p99_ms") or 0.0
        pending = p.get("pending") or 0.0
        timeouts = p.get("timeouts") or 0.0
        if wait_p99 < cfg.pool_wait_p99_ms and pending < 1 and timeouts <= 0:
            continue
        if pending < 1 and timeouts <= 0 and (p.get("wait_count") or 0) < cfg.pool_min_waits:
            continue  # a few checkouts that opened new connections (a worker's pool warming up), not a queue
        svc = p["service"]
        sv = v.services.get(svc, ServiceView(svc))
        query_p99 = max((_ms(agg.sketch.quantile(0.99)) for _, agg in v.deps_of(svc, "db")), default=0.0)
        if query_p99 and wait_p99 < query_p99:
            continue  # the queries, not the wait, dominate: slow_query's business
        used, mx = p.get("used"), p.get("max")
        in_tx = v.counter(svc, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION)
        summary = (
            f"Requests wait {wait_p99:.0f} ms (p99) for a DB connection; pool {used:.0f}/{mx:.0f} busy, DB queries themselves take {query_p99:.0f} ms"
            if used is not None and mx
            else f"Requests wait {wait_p99:.0f} ms (p99) for a DB connection; DB queries themselves take {query_p99:.0f} ms"
        )
        extra = f"Pool max is {mx:.0f}: try {int(mx * 2)} and watch DB CPU." if mx else ""
        yield Candidate(
            "db_pool_saturation",
            svc,
            p["name"],
            explained=sv.busy_share("pool_wait") if sv.has_breakdown else min(1.0, wait_p99 / max(sv.worst_p99_ms, 1.0)),
            strength=min(1.0, wait_p99 / 200.0) + (0.2 if timeouts > 0 else 0.0),
            summary=summary,
            evidence={
                "pool_used": used,
                "pool_max": mx,
                "pending": pending,
                "wait_p99_ms": wait_p99,
                "query_p99_ms": query_p99,
                "timeouts": timeouts,
                "calls_in_transaction": in_tx,
            },
            recommendation=_rec("db_pool_saturation", extra),
        )


def rule_worker_pool_saturation(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for p in v.pools:
        if p["kind"] != "worker":
            continue
        used, mx, pending = p.get("used") or 0.0, p.get("max") or 0.0, p.get("pending") or 0.0
        wait_p99 = p.get("wait_p99_ms") or 0.0
        if not _worker_pool_saturated(p, cfg):
            continue
        svc = p["service"]
        sv = v.services.get(svc, ServiceView(svc))
        demand = cpu_demand(v, svc)
        if demand.bound:
            continue  # CPU-bound: cpu_saturation's business (threads will not help)
        cpu = demand.used
        # the queueing is this pool's to explain when the busy workers wait on nothing the
        # agent sees (unobserved I/O, sleeps): their in-worker time is the app's own
        queue_share = sv.share("queue") * sv.busy_share("self")
        yield Candidate(
            "worker_pool_saturation",
            svc,
            p["name"],
            explained=queue_share if queue_share > 0 else min(1.0, wait_p99 / max(sv.worst_p99_ms, 1.0)),
            strength=min(1.0, max(wait_p99 / 200.0, pending / max(mx, 1.0))),
            summary=f"All {mx:.0f} workers of '{p['name']}' busy, {pending:.0f} requests queued (queue wait p99 {wait_p99:.0f} ms) while CPU is {100 * (cpu or 0):.0f}% of a core",
            evidence={
                "workers_busy": used,
                "workers_max": mx,
                "queued": pending,
                "queue_wait_p99_ms": wait_p99,
                "cpu_utilization": cpu,
                "run_queue_wait": round(demand.waited, 3) if demand.waited is not None else None,
                "cpu_demand": demand.demand,
            },
            recommendation=_rec("worker_pool_saturation", f"Pool '{p['name']}' has {mx:.0f} workers: try {int(max(mx, 1) * 2)}."),
        )


def _worker_pool_saturated(pool: dict, cfg: AnalyzerConfig) -> bool:
    """All workers busy with requests queued, or requests waiting for a worker past the threshold
    while most workers are busy (a wait with idle workers is the process not scheduling the
    thread — CPU or GIL contention — and more workers would not shorten it)."""
    used, mx, pending = pool.get("used") or 0.0, pool.get("max") or 0.0, pool.get("pending") or 0.0
    saturated = mx > 0 and used >= 0.9 * mx
    busy = mx <= 0 or used >= 0.5 * mx
    return (saturated and pending >= 1) or (busy and (pool.get("wait_p99_ms") or 0.0) >= cfg.worker_queue_wait_p99_ms)


@dataclass
class CpuDemand:
    """A service's CPU now, as fractions of one core (means over the latest third of the window)."""

    used: float | None  # process.cpu.utilization
    waited: float | None  # run-queue wait (None: the service does not report it)
    compute_ratio: float  # CPU seconds per request / own ("self") seconds per request
    bound: bool  # CPU-bound: see the module docstring

    @property
    def demand(self) -> float | None:
        return None if self.used is None else round(self.used + (self.waited or 0.0), 3)


def cpu_demand(v: WindowView, svc: str) -> CpuDemand:
    cfg = v.config
    used = v.recent_runtime_mean(svc, "cpu")
    waited = v.recent_runtime_mean(svc, "run_queue_wait")
    if used is None:
        return CpuDemand(None, waited, 0.0, False)
    self_s = sum(b.all.get("self", 0.0) for (s, _r), b in v.cur.breakdown.items() if s == svc)
    requests = sum(b.requests for (s, _r), b in v.cur.breakdown.items() if s == svc) or v.services.get(svc, ServiceView(svc)).requests
    compute_ratio = (used * v.window_s / requests) / (self_s / requests) if requests and self_s > 0 else 0.0
    bound = (
        used >= cfg.cpu_busy
        or (waited is not None and used >= cfg.cpu_demand_min_used and used + waited >= cfg.cpu_busy)
        # no wait signal (another SDK, not Linux): a process that gets half a core and whose
        # own time is mostly computing is CPU-bound on a shared host
        or (waited is None and used >= cfg.cpu_contended and compute_ratio >= cfg.compute_ratio)
    )
    return CpuDemand(used, waited, compute_ratio, bound)


def rule_cpu_saturation(v: WindowView) -> Iterable[Candidate]:
    for svc, sv in v.services.items():
        d = cpu_demand(v, svc)
        if not d.bound or not sv.degraded:
            continue
        cpu, demand = d.used or 0.0, d.demand or 0.0
        self_share = sv.busy_share("self") if sv.has_breakdown else 0.5
        advice = []
        if d.waited is not None and demand > 1.5:
            # many threads contending for the GIL each wake up to ask for it and wait for a CPU:
            # the wait then counts threads waiting, not the CPU the process could use
            summary = f"The process wants more than a core (uses {cpu:.2f}; on average {d.waited:.1f} of its threads wait for a CPU)"
            advice.append(f"It gets {cpu:.2f} core: the host gives the rest to others, so more processes need free cores (another host, fewer neighbours)")
        elif d.waited is not None and d.waited >= 0.05:
            summary = f"The process wants {demand:.2f} core (uses {cpu:.2f}, waits {d.waited:.2f} for a CPU)"
            advice.append(f"It waits {d.waited:.2f} core for a CPU the host gives to others: more processes need free cores (another host, fewer neighbours)")
        else:
            summary = f"The process uses {100 * cpu:.0f}% of one core"
        if sv.worst_route:
            advice.append(f"Profile {sv.worst_route} first (p99 {sv.worst_p99_ms:.0f} ms)")
        yield Candidate(
            "cpu_saturation",
            svc,
            "process",
            explained=self_share,
            strength=min(1.0, (demand - 0.5) / 0.5),
            summary=f"{summary}; {100 * self_share:.0f}% of slow requests' time is the app's own code",
            evidence={
                "cpu_utilization": round(cpu, 3),
                "run_queue_wait": round(d.waited, 3) if d.waited is not None else None,
                "cpu_demand": demand,
                "cpu_per_self_time": round(d.compute_ratio, 3),
                "self_time_share": round(self_share, 3),
                "worst_route": sv.worst_route,
                "worst_p99_ms": sv.worst_p99_ms,
            },
            recommendation=_rec("cpu_saturation", ". ".join(advice) + "." if advice else ""),
            specificity=0.05,
        )


def rule_event_loop_blocked(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for svc, rt in v.cur.runtime.items():
        lag_p99 = _ms(rt.loop_lag.quantile(0.99)) if rt.loop_lag.count else 0.0
        if lag_p99 < cfg.loop_lag_p99_ms or not rt.loop_lag.count:
            continue
        sv = v.services.get(svc, ServiceView(svc))
        if not sv.degraded:
            continue  # a loop lag the requests do not feel (an idle service on a busy host) is no bottleneck
        # how often the loop's timer found the loop busy (late by more than two GIL switch
        # intervals): a loop blocked a third of the time in short stalls delays every async
        # request, even when no single stall is long and the worst route is slow for other reasons
        late_fraction = 1.0 - rt.loop_lag.count_le(cfg.loop_late_s) / rt.loop_lag.count
        yield Candidate(
            "event_loop_blocked",
            svc,
            "event_loop",
            # a p99 stall as long as the worst request explains it only if the loop is found busy
            # often: rare stalls (a busy host leaving an idle loop without a CPU now and then)
            # line up with slow requests without causing them
            explained=max(
                min(1.0, lag_p99 / max(sv.worst_p99_ms, lag_p99, 1.0)) * min(1.0, late_fraction / cfg.loop_busy_fraction),
                min(1.0, 2.0 * late_fraction),
            ),
            strength=min(1.0, lag_p99 / 500.0),
            summary=f"The asyncio event loop lags {lag_p99:.0f} ms (p99): blocking calls run on the loop",
            evidence={
                "event_loop_lag_p99_ms": lag_p99,
                "loop_late_fraction": round(late_fraction, 3),
                "worst_route": sv.worst_route,
                "worst_p99_ms": sv.worst_p99_ms,
            },
            recommendation=_rec("event_loop_blocked"),
            specificity=0.05,
        )


def rule_slow_query(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for svc, sv in v.services.items():
        if not sv.degraded:
            continue  # a slow statement the requests do not feel is no bottleneck
        dbs = v.deps_of(svc, "db")
        total_db = sum(agg.sketch.sum for _, agg in dbs)
        for target, agg in dbs:
            p99 = _ms(agg.sketch.quantile(0.99))
            if p99 < cfg.slow_query_p99_ms or total_db <= 0 or agg.count < cfg.slow_query_min_calls:
                continue
            statement_share = agg.sketch.sum / total_db
            db_share = sv.busy_share("db") if sv.has_breakdown else min(1.0, total_db / max(sv.request_time_s, 1e-9))
            yield Candidate(
                "slow_query",
                svc,
                target,
                explained=db_share * statement_share,
                strength=min(1.0, p99 / 500.0),
                summary=f"'{target}' takes {p99:.0f} ms (p99) and is {100 * statement_share:.0f}% of DB time",
                evidence={
                    "query_p99_ms": p99,
                    "query_p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "calls": agg.count,
                    "share_of_db_time": round(statement_share, 3),
                },
                recommendation=_rec("slow_query"),
            )


def rule_n_plus_one(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    sums = v.counters_by_key(sig.REQUEST_DB_QUERIES + ".sum")
    counts = v.counters_by_key(sig.REQUEST_DB_QUERIES + ".count")
    for (svc, route), total in sums.items():
        n = counts.get((svc, route), 0.0)
        if n < 3:
            continue
        per_request = total / n
        if per_request < cfg.n_plus_one_queries:
            continue
        sv = v.services.get(svc, ServiceView(svc))
        yield Candidate(
            "n_plus_one",
            svc,
            route,
            explained=sv.busy_share("db") if sv.has_breakdown else 0.3,
            strength=min(1.0, per_request / 30.0),
            summary=f"{route} issues {per_request:.0f} DB queries per request",
            evidence={"queries_per_request": round(per_request, 1), "requests": n},
            recommendation=_rec("n_plus_one"),
            specificity=0.05,
        )


def rule_connection_held_during_external_call(v: WindowView) -> Iterable[Candidate]:
    for (svc, target), n in v.counters_by_key(sig.HTTP_CLIENT_CALLS_IN_TRANSACTION).items():
        if n <= 0:
            continue
        sv = v.services.get(svc, ServiceView(svc))
        dep = v.cur.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else n
        fraction = min(1.0, n / max(calls, 1))
        dep_p99 = _ms(dep.sketch.quantile(0.99)) if dep is not None and dep.count else 0.0
        pool_wait = max((p.get("wait_p99_ms") or 0.0 for p in v.pools if p["service"] == svc and p["kind"] == "db"), default=0.0)
        yield Candidate(
            "connection_held_during_external_call",
            svc,
            target,
            explained=min(1.0, sv.busy_share("pool_wait") + sv.busy_share(f"http:{target}", prefix=True)) if sv.has_breakdown else fraction * 0.5,
            # most calls inside a transaction is the anti-pattern itself; a slow dependency makes it worse
            strength=fraction * min(1.0, 0.5 + dep_p99 / 300.0),
            summary=f"{n:.0f} calls to {target} ({100 * fraction:.0f}%) ran while a DB connection was held; they take {dep_p99:.0f} ms (p99), requests wait {pool_wait:.0f} ms for a connection",
            evidence={"calls_in_transaction": n, "fraction_of_calls": round(fraction, 3), "dependency_p99_ms": dep_p99, "pool_wait_p99_ms": pool_wait},
            recommendation=_rec("connection_held_during_external_call"),
            specificity=0.15,
        )


def rule_external_dependency_slow(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for svc, sv in v.services.items():
        for target, agg in v.deps_of(svc, "http"):
            p99 = _ms(agg.sketch.quantile(0.99))
            share = sv.busy_share(f"http:{target}", prefix=True)
            if p99 < cfg.dependency_p99_ms or share < cfg.dependency_share:
                continue
            yield Candidate(
                "external_dependency_slow",
                svc,
                target,
                explained=share,
                strength=min(1.0, p99 / 1000.0),
                summary=f"Calls to {target} take {p99:.0f} ms (p99) and are {100 * share:.0f}% of slow requests' time",
                evidence={
                    "dependency_p99_ms": p99,
                    "dependency_p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "share_of_slow_time": round(share, 3),
                    "calls": agg.count,
                    "errors": agg.errors,
                },
                recommendation=_rec("external_dependency_slow"),
            )


def rule_circuit_open(v: WindowView) -> Iterable[Candidate]:
    for b in v.breakers:
        rejected = b.get("rejected") or 0.0
        if b.get("state") != "open" and rejected <= 0:
            continue
        calls = sum((b.get("calls") or {}).values()) or 1.0
        yield Candidate(
            "circuit_open",
            b["service"],
            b["name"],
            explained=min(1.0, rejected / calls),
            strength=1.0 if b.get("state") == "open" else 0.6,
            summary=f"Breaker '{b['name']}' is {b.get('state')}: {rejected:.0f} calls rejected, error rate {100 * (b.get('error_rate') or 0):.0f}%",
            evidence={"state": b.get("state"), "rejected": rejected, "error_rate": b.get("error_rate"), "transitions": b.get("transitions")},
            recommendation=_rec("circuit_open"),
            specificity=0.1,
        )


def rule_retry_storm(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for (svc, target), retries in v.counters_by_key(sig.HTTP_CLIENT_RETRIES).items():
        dep = v.cur.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else 0
        ratio = retries / max(calls, 1)
        if retries <= 0 or ratio < cfg.retry_ratio:
            continue
        sv = v.services.get(svc, ServiceView(svc))
        yield Candidate(
            "retry_storm",
            svc,
            target,
            explained=max(sv.busy_share(f"http:{target}", prefix=True), 0.3),
            strength=min(1.0, ratio),
            summary=f"{retries:.0f} retries for {calls} calls to {target} ({ratio:.1f} retries per call)",
            evidence={"retries": retries, "calls": calls, "retries_per_call": round(ratio, 2)},
            recommendation=_rec("retry_storm"),
            specificity=0.2,
        )


def rule_missing_timeout(v: WindowView) -> Iterable[Candidate]:
    for (svc, target), n in v.counters_by_key(sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT).items():
        if n <= 0:
            continue
        dep = v.cur.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else n
        fraction = min(1.0, n / max(calls, 1))
        p99 = _ms(dep.sketch.quantile(0.99)) if dep is not None and dep.count else 0.0
        sv = v.services.get(svc, ServiceView(svc))
        slow_dep = p99 >= v.config.dependency_p99_ms
        yield Candidate(
            "missing_timeout",
            svc,
            target,
            # against a slow dependency the missing timeout is what lets it hold requests: it
            # explains the dependency's share of slow time, and ranks above "dependency slow"
            explained=sv.busy_share(f"http:{target}", prefix=True) if slow_dep else 0.0,
            strength=min(1.0, p99 / 1000.0) if slow_dep else 0.3 * fraction,
            summary=f"{n:.0f} calls to {target} ({100 * fraction:.0f}%) were made without a timeout; they take {p99:.0f} ms (p99)",
            evidence={"calls_without_timeout": n, "fraction_of_calls": round(fraction, 3), "dependency_p99_ms": p99},
            recommendation=_rec("missing_timeout"),
            specificity=0.1 if slow_dep and fraction >= 0.5 else 0.0,
        )


def rule_consumer_lag(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    groups: dict[tuple[str, str], dict] = {}
    for p in v.lags:
        g = groups.setdefault((p["group"], p["topic"]), {"lag": 0.0, "time_lag_s": 0.0, "statuses": set(), "partitions": 0})
        g["lag"] += p.get("lag") or 0.0
        g["time_lag_s"] = max(g["time_lag_s"], p.get("time_lag_s") or 0.0)
        g["statuses"].add(p.get("status") or "OK")
        g["partitions"] += 1
    earliest: dict[tuple[str, str], float] = {}
    for b in v.lag_history:  # oldest first: the first bucket that saw the group sets its starting lag
        per_group: dict[tuple[str, str], float] = {}
        for (group, topic, _partition), lp in b.lag.items():
            if lp.lag is not None:
                per_group[(group, topic)] = per_group.get((group, topic), 0.0) + lp.lag
        for k, lag in per_group.items():
            earliest.setdefault(k, lag)
    for (group, topic), g in groups.items():
        growth = g["lag"] - earliest.get((group, topic), g["lag"])
        bad_status = bool(g["statuses"] & {"WARN", "STALL", "STOP"})
        if g["lag"] < cfg.lag_min_messages or (growth <= 0 and not bad_status):
            continue
        yield Candidate(
            "consumer_lag",
            group,
            f"{group}/{topic}",
            explained=0.5 if growth > 0 else 0.3,
            # a lag that keeps growing is the consumer falling behind the producers, however young
            strength=min(1.0, max(g["lag"] / 10_000.0, g["time_lag_s"] / 60.0, growth / (2 * cfg.lag_min_messages), 0.4 if bad_status else 0.0)),
            summary=f"Consumer group '{group}' is {g['lag']:.0f} messages ({g['time_lag_s']:.0f} s) behind on '{topic}', lag grew by {growth:.0f} in the window",
            evidence={"lag": g["lag"], "time_lag_s": g["time_lag_s"], "lag_growth": growth, "statuses": sorted(g["statuses"]), "partitions": g["partitions"]},
            recommendation=_rec("consumer_lag"),
        )


def rule_hot_endpoint(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for svc, sv in v.services.items():
        routes = [(r, agg) for (s, r), agg in v.cur.routes.items() if s == svc and agg.count > 0]
        if len(routes) < 2 or sv.request_time_s <= 0 or not sv.degraded:
            continue
        hot_route, hot = max(routes, key=lambda ra: ra[1].sketch.sum)
        share = hot.sketch.sum / sv.request_time_s
        if share < cfg.hot_share:
            continue
        starved = []
        for r, agg in routes:
            if r == hot_route:
                continue
            now_p99 = _ms(agg.sketch.quantile(0.99))
            base = v.route_p99_ms(svc, r, baseline=True)
            if base and now_p99 >= cfg.degraded_ratio * base:
                starved.append((r, base, now_p99))
        if not starved:
            continue
        workers = [p for p in v.pools if p["service"] == svc and p["kind"] == "worker"]
        if not any(_worker_pool_saturated(p, cfg) for p in workers):
            continue  # no starved workers: the others slow down for another reason (an async service's loop is event_loop_blocked's)
        # when the busy time is spent waiting for DB connections, the pool (and what holds
        # it), not the route's own appetite, is the shared resource the others starve on
        pool_bound = sv.busy_share("pool_wait") if sv.has_breakdown else 0.0
        yield Candidate(
            "hot_endpoint",
            svc,
            hot_route,
            # its own time plus the queueing the other routes suffer for want of a worker
            explained=min(1.0, share + sv.share("queue") * (1.0 - share)) * (1.0 - pool_bound),
            strength=min(1.0, len(starved) / max(len(routes) - 1, 1)),
            summary=f"{hot_route} takes {100 * share:.0f}% of the service's busy time; {len(starved)} other route(s) slowed down (e.g. {starved[0][0]} p99 {starved[0][1]:.0f} → {starved[0][2]:.0f} ms)",
            evidence={"busy_time_share": round(share, 3), "starved_routes": [r for r, _, _ in starved], "hot_route_rps": round(hot.count / v.window_s, 2)},
            recommendation=_rec("hot_endpoint"),
            specificity=0.15,  # names which route keeps the workers busy: more specific than the pool
        )


def rule_memory_pressure(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for svc in {s for b in v.buckets for s in b.runtime}:
        rss = v.runtime_series(svc, "rss")
        growth_mb_min = 0.0
        if len(rss) >= 3 and rss[-1][0] > rss[0][0]:
            growth_mb_min = _mb_per_min(rss[0], rss[-1])
            mid = rss[len(rss) // 2]
            if rss[-1][0] > mid[0]:  # a leak keeps growing; a warm-up (caches, pools filling) levels off
                growth_mb_min = min(growth_mb_min, 2 * _mb_per_min(mid, rss[-1]))
        rt = v.cur.runtime.get(svc)
        gc_fraction = (rt.gc_pause.sum / v.window_s) if rt is not None and rt.gc_pause.count else 0.0
        if growth_mb_min < cfg.rss_growth_mb_per_min and gc_fraction < cfg.gc_time_fraction:
            continue
        yield Candidate(
            "memory_pressure",
            svc,
            "process",
            explained=min(1.0, gc_fraction * 5),
            strength=min(1.0, max(growth_mb_min / (2 * cfg.rss_growth_mb_per_min), gc_fraction / (4 * cfg.gc_time_fraction))),
            summary=f"RSS grows {growth_mb_min:.0f} MB/min (now {rss[-1][1] / 1e6:.0f} MB); GC pauses take {100 * gc_fraction:.1f}% of the time"
            if rss
            else f"GC pauses take {100 * gc_fraction:.1f}% of the time",
            evidence={"rss_growth_mb_per_min": round(growth_mb_min, 1), "rss_bytes": rss[-1][1] if rss else None, "gc_time_fraction": round(gc_fraction, 4)},
            recommendation=_rec("memory_pressure"),
        )


def _mb_per_min(first: tuple[float, float], last: tuple[float, float]) -> float:
    return (last[1] - first[1]) / 1e6 / ((last[0] - first[0]) / 60.0)


def rule_uncompressed_response(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    sums = v.counters_by_key(sig.HTTP_SERVER_RESPONSE_BODY_SIZE + ".sum")
    counts = v.counters_by_key(sig.HTTP_SERVER_RESPONSE_BODY_SIZE + ".count")
    for (svc, route), total in sums.items():
        n = counts.get((svc, route), 0.0)
        if n < 3:
            continue
        avg_bytes = total / n
        if avg_bytes < cfg.large_response_bytes:
            continue
        yield Candidate(
            "uncompressed_response",
            svc,
            route,
            explained=0.2,
            strength=min(1.0, avg_bytes / (2.5 * cfg.large_response_bytes)),  # 250 KB per response at the default threshold
            summary=f"{route} sends {avg_bytes / 1000:.0f} KB per response uncompressed ({n / v.window_s:.1f}/s, {total / v.window_s / 1e6:.1f} MB/s)",
            evidence={"avg_response_bytes": round(avg_bytes), "responses": n, "bytes_per_s": round(total / v.window_s)},
            recommendation=_rec("uncompressed_response"),
        )


def rule_cacheable_reads(v: WindowView) -> Iterable[Candidate]:
    cfg = v.config
    for (svc, target), repeated in v.counters_by_key(sig.DB_REPEATED_READS).items():
        dep = v.cur.deps.get((svc, "db", target))
        calls = dep.count if dep is not None else repeated
        ratio = repeated / max(calls, 1)
        rate = repeated / v.window_s
        if ratio < cfg.repeated_read_ratio or rate < cfg.repeated_read_rps:
            continue
        yield Candidate(
            "cacheable_reads",
            svc,
            target,
            explained=0.2,
            strength=min(1.0, ratio * min(1.0, rate / 20.0)),
            summary=f"'{target}' returned the same read {repeated:.0f} times ({100 * ratio:.0f}% of its calls, {rate:.1f}/s)",
            evidence={"repeated_reads": repeated, "calls": calls, "repeated_ratio": round(ratio, 3), "repeated_per_s": round(rate, 2)},
            recommendation=_rec("cacheable_reads"),
        )


RULES = (
    rule_worker_pool_saturation,
    rule_cpu_saturation,
    rule_event_loop_blocked,
    rule_db_pool_saturation,
    rule_slow_query,
    rule_n_plus_one,
    rule_connection_held_during_external_call,
    rule_external_dependency_slow,
    rule_circuit_open,
    rule_retry_storm,
    rule_missing_timeout,
    rule_consumer_lag,
    rule_hot_endpoint,
    rule_memory_pressure,
    rule_uncompressed_response,
    rule_cacheable_reads,
)


def _avg(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


# A blocked event loop makes threadpool work look saturated: anyio keeps a worker's token
# until the loop takes the result back, and the route that blocks the loop takes most of
# the busy time.  Busy workers and a "hot" route are then symptoms of the loop, not causes.
LOOP_SYMPTOM_KINDS = ("worker_pool_saturation", "hot_endpoint")
LOOP_SYMPTOM_PENALTY = 0.35
LOOP_BLOCKED_STRENGTH = 0.2  # loop lag p99 >= 100 ms


# A CPU-bound CPython process starves its own event loop and threadpool of the GIL: loop
# lag, busy workers and a "hot" route are then symptoms of the CPU, not causes.
CPU_SYMPTOM_KINDS = ("event_loop_blocked", "worker_pool_saturation", "hot_endpoint")


def demote_loop_symptoms(candidates: list[Candidate]) -> None:
    cpu_bound = {c.service for c in candidates if c.kind == "cpu_saturation"}
    for c in candidates:
        if c.service in cpu_bound and c.kind in CPU_SYMPTOM_KINDS:
            c.specificity -= LOOP_SYMPTOM_PENALTY
            c.evidence = {**c.evidence, "cpu_bound": True}
    blocked = {c.service for c in candidates if c.kind == "event_loop_blocked" and c.strength >= LOOP_BLOCKED_STRENGTH and c.service not in cpu_bound}
    for c in candidates:
        if c.service in blocked and c.kind in LOOP_SYMPTOM_KINDS:
            c.specificity -= LOOP_SYMPTOM_PENALTY
            c.evidence = {**c.evidence, "event_loop_blocked": True}


# ---------------------------------------------------------------- the analyzer


class Analyzer:
    """Runs the rules over a source; remembers since when each finding holds."""

    def __init__(self, source: AnalyzerSource, config: AnalyzerConfig | None = None) -> None:
        self.source = source
        self.config = config or AnalyzerConfig()
        self._since: dict[tuple[str, str, str], float] = {}
        self.latest: list[Finding] = []
        self.last_run_s: float | None = None

    def analyze(self) -> list[Finding]:
        view = WindowView(self.source, self.config)
        candidates: list[Candidate] = []
        for rule in RULES:
            try:
                candidates.extend(rule(view))
            except Exception:  # one broken rule must not hide the others
                continue
        demote_loop_symptoms(candidates)
        best: dict[tuple[str, str, str], Candidate] = {}
        for c in candidates:
            key = (c.kind, c.service, c.target)
            if key not in best or c.score > best[key].score:
                best[key] = c
        now = view.now
        self._since = {k: self._since.get(k, now) for k in best}
        findings = [
            Finding(
                kind=c.kind,
                service=c.service,
                target=c.target,
                score=c.score,
                severity=severity_of(c.score),
                since=datetime.fromtimestamp(self._since[k], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                summary=c.summary,
                evidence=c.evidence,
                recommendation=c.recommendation or FINDINGS_BY_KIND[c.kind].recommendation,
            )
            for k, c in best.items()
        ]
        findings.sort(key=lambda f: (-f.score, f.kind, f.service, f.target))
        self.latest = findings
        self.last_run_s = time.time()
        return findings
