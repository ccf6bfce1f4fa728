"""``missing_timeout``: outbound calls are made without a timeout.

Fires for every target with calls without a timeout.  Against a slow dependency (p99 ≥
``dependency_p99_ms``) the missing timeout is what lets it hold requests: it explains the
dependency's share of slow time and ranks above ``external_dependency_slow``; against a
fast one it is a low-strength warning sign.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.MISSING_TIMEOUT


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    for (svc, target), n in snap.counters_by_key(sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT).items():
        if n <= 0:
            continue
        dep = snap.deps.get((svc, "http", target))
        calls = dep.count if dep is not None else n
        fraction = min(1.0, n / max(calls, 1))
        p99 = dep.p99_ms if dep is not None and dep.count else 0.0
        sv = snap.service(svc)
        slow_dep = p99 >= snap.config.dependency_p99_ms
        yield Candidate(
            KIND,
            svc,
            target,
            explained=sv.busy_share(f"http:{target}", prefix=True) if slow_dep else 0.0,
            strength=min(1.0, p99 / 1000.0) if slow_dep else 0.3 * fraction,
            summary=f"{n:.0f} calls to {target} ({100 * fraction:.0f}%) were made without a timeout; they take {p99:.0f} ms (p99)",
            evidence={"calls_without_timeout": n, "fraction_of_calls": round(fraction, 3), "dependency_p99_ms": p99},
            recommendation=recommendation(KIND),
            specificity=0.1 if slow_dep and fraction >= 0.5 else 0.0,
        )
