"""``cpu_saturation``: the process is CPU-bound (for CPython: one core, the GIL).

Fires on a degraded service whose CPU demand (``analysis.cpu``) says it is CPU-bound.
``explained``: the slow requests' in-worker share of the app's own time; ``strength``:
(demand − 0.5) / 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.cpu import cpu_demand
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.CPU_SATURATION


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    for svc, sv in snap.services.items():
        d = cpu_demand(snap, svc)
        if not d.bound or not sv.degraded:
            continue
        cpu, demand = d.used or 0.0, d.demand or 0.0
        self_share = sv.busy_share("self") if sv.has_breakdown else 0.5
        advice = []
        if d.waited is not None and demand > 1.5:
            # many threads contending for the GIL each wake up to ask for it and wait for a CPU:
            # the wait then counts threads waiting, not the CPU the process could use
            summary = f"The process wants more than a core (uses {cpu:.2f}; on average {d.waited:.1f} of its threads wait for a CPU)"
            advice.append(f"It gets {cpu:.2f} core: the host gives the rest to others, so more processes need free cores (another host, fewer neighbours)")
        elif d.waited is not None and d.waited >= 0.05:
            summary = f"The process wants {demand:.2f} core (uses {cpu:.2f}, waits {d.waited:.2f} for a CPU)"
            advice.append(f"It waits {d.waited:.2f} core for a CPU the host gives to others: more processes need free cores (another host, fewer neighbours)")
        else:
            summary = f"The process uses {100 * cpu:.0f}% of one core"
        if sv.worst_route:
            advice.append(f"Profile {sv.worst_route} first (p99 {sv.worst_p99_ms:.0f} ms)")
        yield Candidate(
            KIND,
            svc,
            "process",
            explained=self_share,
            strength=min(1.0, (demand - 0.5) / 0.5),
            summary=f"{summary}; {100 * self_share:.0f}% of slow requests' time is the app's own code",
            evidence={
                "cpu_utilization": round(cpu, 3),
                "run_queue_wait": round(d.waited, 3) if d.waited is not None else None,
                "cpu_demand": demand,
                "cpu_per_self_time": round(d.compute_ratio, 3),
                "self_time_share": round(self_share, 3),
                "worst_route": sv.worst_route,
                "worst_p99_ms": sv.worst_p99_ms,
            },
            recommendation=recommendation(KIND, ". ".join(advice) + "." if advice else ""),
            specificity=0.05,
        )
