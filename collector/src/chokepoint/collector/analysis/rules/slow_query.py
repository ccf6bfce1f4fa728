"""``slow_query``: specific statements dominate DB time.

Fires, in a degraded service, for a statement with p99 ≥ ``slow_query_p99_ms`` over at
least ``slow_query_min_calls`` calls.  Only statements count (``statements``): a
``connect`` span, a span named just by the DB system (a whole transaction), ``BEGIN`` /
``COMMIT`` and schema statements are neither a slow query nor DB time.  In a process that
waits for a CPU more than it runs (run-queue wait above its CPU use, ``analysis.cpu``), a
statement whose median is fast is no slow query: its p99 tail is the wait for a CPU the
client-side span includes.  ``explained``: the DB share of the slow requests'
time × this statement's share of DB time; ``strength``: p99 / 500 ms.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.cpu import cpu_demand
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.SLOW_QUERY


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, sv in snap.services.items():
        if not sv.degraded:
            continue  # a slow statement the requests do not feel is no bottleneck
        dbs = snap.statements_of(svc)
        total_db = sum(d.time_s for _, d in dbs)
        demand = cpu_demand(snap, svc)
        starved = demand.waited is not None and demand.waited > (demand.used or 0.0)
        for target, d in dbs:
            if d.p99_ms < cfg.slow_query_p99_ms or total_db <= 0 or d.count < cfg.slow_query_min_calls:
                continue
            if starved and d.p50_ms < cfg.slow_query_p99_ms:
                continue  # a fast statement whose tail is the process waiting for a CPU
            statement_share = d.time_s / total_db
            db_share = sv.busy_share("db") if sv.has_breakdown else min(1.0, total_db / max(sv.request_time_s, 1e-9))
            yield Candidate(
                KIND,
                svc,
                target,
                explained=db_share * statement_share,
                strength=min(1.0, d.p99_ms / 500.0),
                summary=f"'{target}' takes {d.p99_ms:.0f} ms (p99) and is {100 * statement_share:.0f}% of DB time",
                evidence={"query_p99_ms": d.p99_ms, "query_p50_ms": d.p50_ms, "calls": d.count, "share_of_db_time": round(statement_share, 3)},
                recommendation=recommendation(KIND),
            )
