"""``connection_held_during_external_call``: an outbound call runs while a DB connection is held.

Fires for every target with calls made inside a transaction
(``HTTP_CLIENT_CALLS_IN_TRANSACTION``).  ``explained``: pool wait plus the call's share of
the slow requests' in-worker time; ``strength``: the fraction of calls made in a
transaction, more when the dependency is slow.  More specific than ``db_pool_saturation``.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.CONNECTION_HELD_DURING_EXTERNAL_CALL


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    for (svc, target), n in snap.counters_by_key(sig.HTTP_CLIENT_CALLS_IN_TRANSACTION).items():
        if n <= 0:
            continue
        sv = snap.service(svc)
        dep = snap.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else n
        fraction = min(1.0, n / max(calls, 1))
        dep_p99 = dep.p99_ms if dep is not None and dep.count else 0.0
        pool_wait = max((p.wait_p99_ms for p in snap.pools_of(svc, "db")), default=0.0)
        yield Candidate(
            KIND,
            svc,
            target,
            explained=min(1.0, sv.busy_share("pool_wait") + sv.busy_share(f"http:{target}", prefix=True)) if sv.has_breakdown else fraction * 0.5,
            # most calls inside a transaction is the anti-pattern itself; a slow dependency makes it worse
            strength=fraction * min(1.0, 0.5 + dep_p99 / 300.0),
            summary=f"{n:.0f} calls to {target} ({100 * fraction:.0f}%) ran while a DB connection was held; they take {dep_p99:.0f} ms (p99), requests wait {pool_wait:.0f} ms for a connection",
            evidence={"calls_in_transaction": n, "fraction_of_calls": round(fraction, 3), "dependency_p99_ms": dep_p99, "pool_wait_p99_ms": pool_wait},
            recommendation=recommendation(KIND),
            specificity=0.15,
        )
