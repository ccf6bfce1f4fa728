"""``external_dependency_slow``: an outbound HTTP dependency dominates latency.

Fires for an HTTP target with p99 ≥ ``dependency_p99_ms`` that takes at least
``dependency_share`` of the slow requests' in-worker time.  ``explained``: that share;
``strength``: p99 / 1 s.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.EXTERNAL_DEPENDENCY_SLOW


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, sv in snap.services.items():
        for target, d in snap.deps_of(svc, "http"):
            share = sv.busy_share(f"http:{target}", prefix=True)
            if d.p99_ms < cfg.dependency_p99_ms or share < cfg.dependency_share:
                continue
            yield Candidate(
                KIND,
                svc,
                target,
                explained=share,
                strength=min(1.0, d.p99_ms / 1000.0),
                summary=f"Calls to {target} take {d.p99_ms:.0f} ms (p99) and are {100 * share:.0f}% of slow requests' time",
                evidence={
                    "dependency_p99_ms": d.p99_ms,
                    "dependency_p50_ms": d.p50_ms,
                    "share_of_slow_time": round(share, 3),
                    "calls": d.count,
                    "errors": d.errors,
                },
                recommendation=recommendation(KIND),
            )
