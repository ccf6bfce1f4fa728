"""``worker_pool_saturation``: every worker is busy and requests queue, while CPU is not the limit.

Fires on a ``worker`` pool that is saturated (``saturated``) unless the process is
CPU-bound (``cpu_saturation``'s business: more threads do not help).  ``explained``: the
queueing, in proportion to the app's own (``self``) time — waits the agent cannot see;
``strength``: queue wait p99 / 200 ms or queued / workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.cpu import cpu_demand
from chokepoint.collector.analysis.snapshot import PoolStats, WindowSnapshot
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


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for p in snap.pools:
        if p.kind != "worker" or not saturated(p, cfg):
            continue
        used, mx, pending, wait_p99 = p.used or 0.0, p.max or 0.0, p.pending or 0.0, p.wait_p99_ms
        svc = p.service
        sv = snap.service(svc)
        demand = cpu_demand(snap, svc)
        if demand.bound:
            continue  # CPU-bound: cpu_saturation's business (threads will not help)
        cpu = demand.used
        # the queueing is this pool's to explain when the busy workers wait on nothing the
        # agent sees (unobserved I/O, sleeps): their in-worker time is the app's own
        queue_share = sv.share("queue") * sv.busy_share("self")
        yield Candidate(
            KIND,
            svc,
            p.name,
            explained=queue_share if queue_share > 0 else min(1.0, wait_p99 / max(sv.worst_p99_ms, 1.0)),
            strength=min(1.0, max(wait_p99 / 200.0, pending / max(mx, 1.0))),
            summary=f"All {mx:.0f} workers of '{p.name}' busy, {pending:.0f} requests queued (queue wait p99 {wait_p99:.0f} ms) while CPU is {100 * (cpu or 0):.0f}% of a core",
            evidence={
                "workers_busy": used,
                "workers_max": mx,
                "queued": pending,
                "queue_wait_p99_ms": wait_p99,
                "cpu_utilization": cpu,
                "run_queue_wait": round(demand.waited, 3) if demand.waited is not None else None,
                "cpu_demand": demand.demand,
            },
            recommendation=recommendation(KIND, f"Pool '{p.name}' has {mx:.0f} workers: try {int(max(mx, 1) * 2)}."),
        )
