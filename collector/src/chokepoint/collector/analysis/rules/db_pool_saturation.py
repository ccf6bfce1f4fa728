"""``db_pool_saturation``: requests wait for a DB connection while the queries themselves are fast.

Fires on a ``db`` pool whose checkout wait p99 is past ``pool_wait_p99_ms`` over at least
``pool_min_waits`` checkouts, or with callers pending, or with checkout timeouts — unless
the queries are slower than the wait (then ``slow_query`` explains it).  ``explained``: the
slow requests' in-worker share spent in ``pool_wait``; ``strength``: wait p99 / 200 ms
(+0.2 with timeouts).
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.instrument import signals as sig

KIND = Kind.DB_POOL_SATURATION


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for p in snap.pools:
        if p.kind != "db":
            continue
        wait_p99, pending, timeouts = p.wait_p99_ms, p.pending or 0.0, p.timeouts
        if wait_p99 < cfg.pool_wait_p99_ms and pending < 1 and timeouts <= 0:
            continue
        if pending < 1 and timeouts <= 0 and p.wait_count < cfg.pool_min_waits:
            continue  # a few checkouts that opened new connections (a worker's pool warming up), not a queue
        svc = p.service
        sv = snap.service(svc)
        query_p99 = max((d.p99_ms for _, d in snap.deps_of(svc, "db")), default=0.0)
        if query_p99 and wait_p99 < query_p99:
            continue  # the queries, not the wait, dominate: slow_query's business
        used, mx = p.used, p.max
        in_tx = snap.counter(svc, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION)
        summary = (
            f"Requests wait {wait_p99:.0f} ms (p99) for a DB connection; pool {used:.0f}/{mx:.0f} busy, DB queries themselves take {query_p99:.0f} ms"
            if used is not None and mx
            else f"Requests wait {wait_p99:.0f} ms (p99) for a DB connection; DB queries themselves take {query_p99:.0f} ms"
        )
        extra = f"Pool max is {mx:.0f}: try {int(mx * 2)} and watch DB CPU." if mx else ""
        yield Candidate(
            KIND,
            svc,
            p.name,
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
            recommendation=recommendation(KIND, extra),
        )
