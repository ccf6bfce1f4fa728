"""``n_plus_one``: many near-identical queries per request.

Fires for a route whose mean DB queries per request (``REQUEST_DB_QUERIES`` ``.sum`` /
``.count``) is at least ``n_plus_one_queries``.  ``explained``: the DB share of the slow
requests' in-worker time; ``strength``: queries per request / 30.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.N_PLUS_ONE


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for (svc, route), (per_request, n, _total) in snap.means_by_key(sig.REQUEST_DB_QUERIES).items():
        if per_request < cfg.n_plus_one_queries:
            continue
        sv = snap.service(svc)
        yield Candidate(
            KIND,
            svc,
            route,
            explained=sv.busy_share("db") if sv.has_breakdown else 0.3,
            strength=min(1.0, per_request / 30.0),
            summary=f"{route} issues {per_request:.0f} DB queries per request",
            evidence={"queries_per_request": round(per_request, 1), "requests": n},
            recommendation=recommendation(KIND),
            specificity=0.05,
        )
