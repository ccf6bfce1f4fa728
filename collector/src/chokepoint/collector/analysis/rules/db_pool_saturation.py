"""``db_pool_saturation``: requests wait for a DB (or Redis) connection while the queries themselves are fast.

Fires on a ``db`` or ``redis`` pool that is waited on (``pools.waited_on``: checkout wait
p99 past ``pool_wait_p99_ms`` over at least ``pool_min_waits`` checkouts, callers pending,
or checkout timeouts) — unless the queries are slower than the wait (then ``slow_query``
explains it).  Query time is
read from statements only (``statements``: not ``connect``, transaction or schema spans);
the summary gives the pool's peaks over the same window as the wait p99.  ``explained``: the
slow requests' in-worker share spent in ``pool_wait``; ``strength``: wait p99 / 200 ms
(+0.2 with timeouts).
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.rules.pools import pool_wait_share, waited_on
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.DB_POOL_SATURATION


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for p in snap.pools:
        if p.kind not in ("db", "redis") or not waited_on(p, cfg):
            continue
        wait_p99, pending, timeouts = p.wait_p99_ms, p.pending or 0.0, p.timeouts
        what = "a Redis connection" if p.kind == "redis" else "a DB connection"
        svc = p.service
        sv = snap.service(svc)
        query_p99 = max((d.p99_ms for _, d in snap.statements_of(svc)), default=0.0)
        if query_p99 and wait_p99 < query_p99:
            continue  # the queries, not the wait, dominate: slow_query's business
        # beside the window's wait p99, the window's peaks (a mean over a window that began
        # before the pool filled up would read "0/2 busy" next to an 800 ms wait)
        used, mx = p.used_peak if p.used_peak is not None else p.used, p.max
        pending = p.pending_peak if p.pending_peak is not None else pending
        in_tx = snap.counter(svc, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION)
        summary = (
            f"Requests wait {wait_p99:.0f} ms (p99) for {what}; pool {used:.0f}/{mx:.0f} busy at peak, {pending:.0f} waiting at peak"
            if used is not None and mx
            else f"Requests wait {wait_p99:.0f} ms (p99) for {what}"
        )
        summary += f"; statements themselves take {query_p99:.0f} ms (p99)" if query_p99 else "; no statement timed (only connection or transaction spans)"
        extra = f"Pool max is {mx:.0f}: try {int(mx * 2)} and watch DB CPU." if mx else ""
        yield Candidate(
            KIND,
            svc,
            p.name,
            explained=pool_wait_share(snap, p) if sv.has_breakdown else min(1.0, wait_p99 / max(sv.worst_p99_ms, 1.0)),
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
