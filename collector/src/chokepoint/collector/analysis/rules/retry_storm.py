"""``retry_storm``: retries multiply outbound calls.

Fires for a target with at least ``retry_ratio`` retries per call.  ``explained``: the
target's share of the slow requests' in-worker time (at least 0.3); ``strength``: retries
per call.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.RETRY_STORM


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for (svc, target), retries in snap.counters_by_key(sig.HTTP_CLIENT_RETRIES).items():
        dep = snap.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else 0
        ratio = retries / max(calls, 1)
        if retries <= 0 or ratio < cfg.retry_ratio:
            continue
        sv = snap.service(svc)
        yield Candidate(
            KIND,
            svc,
            target,
            explained=max(sv.busy_share(f"http:{target}", prefix=True), 0.3),
            strength=min(1.0, ratio),
            summary=f"{retries:.0f} retries for {calls} calls to {target} ({ratio:.1f} retries per call)",
            evidence={"retries": retries, "calls": calls, "retries_per_call": round(ratio, 2)},
            recommendation=recommendation(KIND),
            specificity=0.2,
        )
