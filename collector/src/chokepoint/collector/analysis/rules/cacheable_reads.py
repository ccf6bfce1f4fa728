"""``cacheable_reads``: the same read is repeated across requests.

Fires for a statement whose identical results (``DB_REPEATED_READS``) are at least
``repeated_read_ratio`` of its calls and ``repeated_read_rps`` per second.  Low
``explained`` (0.2): an opportunity, rarely the bottleneck itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.CACHEABLE_READS


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for (svc, target), repeated in snap.counters_by_key(sig.DB_REPEATED_READS).items():
        dep = snap.deps.get((svc, "db", target))
        calls = dep.count if dep is not None else repeated
        ratio = repeated / max(calls, 1)
        rate = repeated / snap.window_s
        if ratio < cfg.repeated_read_ratio or rate < cfg.repeated_read_rps:
            continue
        yield Candidate(
            KIND,
            svc,
            target,
            explained=0.2,
            strength=min(1.0, ratio * min(1.0, rate / 20.0)),
            summary=f"'{target}' returned the same read {repeated:.0f} times ({100 * ratio:.0f}% of its calls, {rate:.1f}/s)",
            evidence={"repeated_reads": repeated, "calls": calls, "repeated_ratio": round(ratio, 3), "repeated_per_s": round(rate, 2)},
            recommendation=recommendation(KIND),
        )
