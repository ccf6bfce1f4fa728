"""``event_loop_blocked``: blocking calls inside async code delay every coroutine.

Fires on a loop-lag p99 past ``loop_lag_p99_ms`` in a degraded service (a loop lag the
requests do not feel — an idle service on a busy host — is no bottleneck).  ``explained``:
the p99 stall relative to the worst request, weighted by how often the loop's timer found
the loop busy (late by more than ``loop_late_s``); ``strength``: lag p99 / 500 ms.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.EVENT_LOOP_BLOCKED


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, rt in snap.runtime.items():
        lag_p99 = rt.loop_lag_p99_ms
        if not rt.loop_lag_count or lag_p99 < cfg.loop_lag_p99_ms:
            continue
        sv = snap.service(svc)
        if not sv.degraded:
            continue
        late_fraction = rt.loop_late_fraction
        yield Candidate(
            KIND,
            svc,
            "event_loop",
            # a p99 stall as long as the worst request explains it only if the loop is found busy
            # often: rare stalls (a busy host leaving an idle loop without a CPU now and then)
            # line up with slow requests without causing them
            explained=max(
                min(1.0, lag_p99 / max(sv.worst_p99_ms, lag_p99, 1.0)) * min(1.0, late_fraction / cfg.loop_busy_fraction),
                min(1.0, 2.0 * late_fraction),
            ),
            strength=min(1.0, lag_p99 / 500.0),
            summary=f"The asyncio event loop lags {lag_p99:.0f} ms (p99): blocking calls run on the loop",
            evidence={
                "event_loop_lag_p99_ms": lag_p99,
                "loop_late_fraction": round(late_fraction, 3),
                "worst_route": sv.worst_route,
                "worst_p99_ms": sv.worst_p99_ms,
            },
            recommendation=recommendation(KIND),
            specificity=0.05,
        )
