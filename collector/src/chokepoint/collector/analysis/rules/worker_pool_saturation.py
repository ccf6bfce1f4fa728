"""``worker_pool_saturation``: every worker is busy and requests queue, while CPU is not the limit.

Fires on a ``worker`` pool that is saturated (``saturated``), or on requests waiting before
any worker sees them: the accept backlog of the listening socket (all processes together)
with the wait estimated by Little's law (wait ≈ backlog / accept rate) when it cannot be
timed (over at least ``MIN_ACCEPTS`` accepts in the window), or a proxy's ``X-Request-Start``
queue time.  A pre-fork pool (gunicorn) reports
per process: ``max`` threads each, ``processes`` of them (``PoolStats.capacity``).  An
executor under its default name (``ThreadPoolExecutor-N``, asyncio's ``asyncio``) is the
app's or a library's own, not the server's: its saturation counts only when requests are
seen waiting for a worker (a ``queue`` share in the breakdown).  A wait for a worker while
the pool is not full, in a process that waits for a CPU far more than it runs (run-queue
wait ≥ ``STARVED_RATIO`` × CPU used and ≥ half a core), is the host starving the process:
more threads would not shorten it (nor the accept backlog, which grows for the same reason).  Not for a CPU-bound process
(``cpu_saturation``'s business: more threads do not help).  The summary states the
server's processes × threads when the pool reports its processes.

``explained``: the queueing, in proportion to the app's own (``self``) time — waits the
agent cannot see — or, without a breakdown ``queue`` component, the wait relative to the
worst route's p99 (the wait plus that route's own p99 for a backlog the server spans do not
include); ``strength``: wait / 200 ms or queued / workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.cpu import cpu_demand
from chokepoint.collector.analysis.snapshot import PoolStats, RuntimeStats, WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.WORKER_POOL_SATURATION


def saturated(pool: PoolStats, cfg: AnalyzerConfig) -> bool:
    """All workers busy with requests queued, or requests waiting for a worker past the threshold
    while most workers are busy (a wait with idle workers is the process not scheduling the
    thread — CPU or GIL contention — and more workers would not shorten it)."""
    used, mx, pending = pool.used or 0.0, pool.max or 0.0, pool.pending or 0.0
    full = mx > 0 and used >= 0.9 * mx
    busy = mx <= 0 or used >= 0.5 * mx
    return (full and pending >= 1) or (busy and pool.wait_p99_ms >= cfg.worker_queue_wait_p99_ms)


INTERNAL_EXECUTOR_PREFIXES = ("ThreadPoolExecutor-", "asyncio")
STARVED_RATIO = 4.0


def starved(demand) -> bool:
    """The process waits for a CPU far more than it runs (see the module docstring)."""
    return demand.waited is not None and demand.waited >= max(0.5, STARVED_RATIO * (demand.used or 0.0))


def full_and_queued(p: PoolStats) -> bool:
    return bool(p.max) and (p.used or 0.0) >= 0.9 * p.max and (p.pending or 0.0) >= 1


def serves_requests(p: PoolStats, sv) -> bool:
    """A pool the server hands requests to, or any pool while requests wait for a worker."""
    return not p.name.startswith(INTERNAL_EXECUTOR_PREFIXES) or sv.share("queue") > 0


MIN_ACCEPTS = 20  # in the window: fewer arrivals give Little's law nothing to average over


def backlog_wait_ms(rt: RuntimeStats | None, window_s: float) -> float:
    """Little's law over the window: mean connections waiting in the listen queue / accepts per second.

    Only over at least ``MIN_ACCEPTS`` accepts in the window: clients that keep their
    connections alive are accepted a handful of times, and one connection seen queued at a
    collection would read as a wait of many seconds nobody suffers."""
    if rt is None or not rt.accept_backlog or not rt.accept_rate or rt.accept_rate * window_s < MIN_ACCEPTS:
        return 0.0
    return round(1000.0 * rt.accept_backlog / rt.accept_rate, 1)


def _shape(p: PoolStats | None) -> str:
    if p is None or not p.max:
        return "the server's workers"
    if p.processes and p.processes > 1:
        return f"{p.processes} processes × {p.max:.0f} thread{'s' if round(p.max) != 1 else ''} of '{p.name}'"
    return f"{p.max:.0f} workers of '{p.name}'"


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    services = (
        {p.service for p in snap.pools if p.kind == "worker"}
        | {s for s, rt in snap.runtime.items() if rt.accept_backlog}
        | {s for s, sv in snap.services.items() if sv.queue_wait_count}
    )
    for svc in sorted(services):
        sv = snap.service(svc)
        rt = snap.runtime.get(svc)
        pools = sorted(snap.pools_of(svc, "worker"), key=lambda p: -(p.max or 0.0))
        full = [p for p in pools if saturated(p, cfg) and serves_requests(p, sv)]
        backlog_ms = backlog_wait_ms(rt, snap.window_s)
        proxy_ms = sv.queue_wait_p99_ms if sv.queue_wait_count else 0.0
        before_app_ms = max(backlog_ms, proxy_ms)
        if not full and before_app_ms < cfg.worker_queue_wait_p99_ms:
            continue
        demand = cpu_demand(snap, svc)
        if demand.bound:
            continue  # CPU-bound: cpu_saturation's business (threads will not help)
        if starved(demand):
            full = [p for p in full if full_and_queued(p)]
            if not full:
                continue  # the listen queue of a process without a CPU grows for the same reason
        for p in full or [next((p for p in pools if serves_requests(p, sv)), None)]:
            yield _candidate(snap, svc, p, backlog_ms, proxy_ms, demand)


def _candidate(snap: WindowSnapshot, svc: str, p: PoolStats | None, backlog_ms: float, proxy_ms: float, demand) -> Candidate:
    sv = snap.service(svc)
    rt = snap.runtime.get(svc)
    used, mx, pending = (p.used or 0.0, p.max or 0.0, p.pending or 0.0) if p is not None else (0.0, 0.0, 0.0)
    capacity = p.capacity if p is not None else 0.0
    timed_ms = p.wait_p99_ms if p is not None and p.wait_count else 0.0
    backlog = rt.accept_backlog if rt is not None and rt.accept_backlog else 0.0
    wait_ms = max(timed_ms, backlog_ms, proxy_ms)
    queued = max(pending, backlog)
    # the queueing is this pool's to explain when the busy workers wait on nothing the
    # agent sees (unobserved I/O, sleeps): their in-worker time is the app's own
    queue_share = sv.share("queue") * sv.busy_share("self")
    outside = max(backlog_ms, proxy_ms) > timed_ms  # a wait the server spans do not include
    client_ms = max(sv.worst_p99_ms + (wait_ms if outside else 0.0), 1.0)
    if timed_ms:
        how = f"queue wait p99 {timed_ms:.0f} ms"
    elif proxy_ms >= backlog_ms:
        how = f"waiting {proxy_ms:.0f} ms (p99) before the app sees a request (X-Request-Start)"
    else:
        how = f"~{backlog_ms:.0f} ms wait in the accept backlog ({backlog:.0f} connections / {rt.accept_rate:.1f} accepted/s)"
    name = p.name if p is not None else "server"
    busy = f"All {_shape(p)} busy" if p is not None and mx and used >= 0.9 * mx else f"Requests queue for {_shape(p)}"
    cpu = demand.used
    return Candidate(
        KIND,
        svc,
        name,
        explained=queue_share if queue_share > 0 else min(1.0, wait_ms / client_ms),
        strength=min(1.0, max(wait_ms / 200.0, queued / max(capacity, 1.0))),
        summary=f"{busy}, {queued:.0f} requests queued ({how}) while CPU is {100 * (cpu or 0):.0f}% of a core",
        evidence={
            "workers_busy": used,
            "workers_max": capacity,
            "processes": p.processes if p is not None else None,
            "queued": queued,
            "queue_wait_p99_ms": timed_ms,
            "accept_backlog": round(backlog, 1) if rt is not None and rt.accept_backlog is not None else None,
            "accept_backlog_wait_ms": backlog_ms if backlog_ms else None,
            "proxy_queue_wait_p99_ms": proxy_ms if proxy_ms else None,
            "cpu_utilization": cpu,
            "run_queue_wait": round(demand.waited, 3) if demand.waited is not None else None,
            "cpu_demand": demand.demand,
        },
        recommendation=recommendation(
            KIND, f"'{name}' has {capacity:.0f} workers: try {int(max(capacity, 1) * 2)}." if capacity else "Add worker processes or threads."
        ),
    )
