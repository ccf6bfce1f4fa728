"""``hot_endpoint``: one endpoint takes most capacity and starves the others.

Fires in a degraded service with a saturated worker pool when one route takes at least
``hot_share`` of the service's busy time (time holding a worker: request time less the
breakdown's ``queue``, so a route that is only the most frequent one, queueing like the
rest, is not hot) and another route's p99 rose to
``degraded_ratio`` × its baseline.  When the busy time is spent waiting for DB
connections, the pool (and what holds it) is the shared resource the others starve on,
so ``explained`` is discounted by the pool-wait share.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.rules.worker_pool_saturation import saturated
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.HOT_ENDPOINT


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, sv in snap.services.items():
        routes = [(r, st) for r, st in sv.routes.items() if st.count > 0]
        if len(routes) < 2 or sv.request_time_s <= 0 or not sv.degraded:
            continue
        busy_s = sum(st.busy_s for _, st in routes)
        if busy_s <= 0:
            continue
        hot_route, hot = max(routes, key=lambda rs: rs[1].busy_s)
        share = hot.busy_s / busy_s
        if share < cfg.hot_share:
            continue
        starved = [
            (r, st.baseline_p99_ms, st.p99_ms)
            for r, st in routes
            if r != hot_route and st.baseline_p99_ms and st.p99_ms >= cfg.degraded_ratio * st.baseline_p99_ms
        ]
        if not starved:
            continue
        if not any(saturated(p, cfg) for p in snap.pools_of(svc, "worker")):
            continue  # no starved workers: the others slow down for another reason (an async service's loop is event_loop_blocked's)
        pool_bound = sv.busy_share("pool_wait") if sv.has_breakdown else 0.0
        yield Candidate(
            KIND,
            svc,
            hot_route,
            # its own time plus the queueing the other routes suffer for want of a worker
            explained=min(1.0, share + sv.share("queue") * (1.0 - share)) * (1.0 - pool_bound),
            strength=min(1.0, len(starved) / max(len(routes) - 1, 1)),
            summary=f"{hot_route} takes {100 * share:.0f}% of the service's busy time; {len(starved)} other route(s) slowed down (e.g. {starved[0][0]} p99 {starved[0][1]:.0f} → {starved[0][2]:.0f} ms)",
            evidence={"busy_time_share": round(share, 3), "starved_routes": [r for r, _, _ in starved], "hot_route_rps": round(hot.count / snap.window_s, 2)},
            recommendation=recommendation(KIND),
            specificity=0.15,  # names which route keeps the workers busy: more specific than the pool
        )
