"""``memory_pressure``: RSS keeps growing or GC pauses take a large share of the time.

RSS growth is measured from the first to the last value of the window, capped by twice the
growth over its second half (a leak keeps growing; a warm-up levels off); when the second
half grows faster (a leak that began within the window), its rate is the growth.  Fires on growth
≥ ``rss_growth_mb_per_min`` or GC time ≥ ``gc_time_fraction``.

GC time is the CPU the collector used (``gc_cpu``: GC thread-CPU seconds per second, from
``chokepoint.runtime.gc.cpu_time``).  Without it, the wall-clock pause time with the
run-queue wait taken out (× used / (used + waited)): on a CPU-starved host a GC pass waits
for a CPU like everything else, and that wait is no memory pressure.  A process younger than
``warmup_s`` (as far as the store has seen it) is warming up: no finding.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import RuntimeStats, WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.MEMORY_PRESSURE


def mb_per_min(first: tuple[float, float], last: tuple[float, float]) -> float:
    return (last[1] - first[1]) / 1e6 / ((last[0] - first[0]) / 60.0)


def gc_cpu_fraction(rt: RuntimeStats, window_s: float) -> float:
    """The share of CPU time spent collecting garbage (see the module docstring)."""
    if rt.gc_cpu is not None:
        return rt.gc_cpu
    if not rt.gc_pause_count:
        return 0.0
    wall = rt.gc_pause_s / window_s
    if rt.cpu is not None and rt.run_queue_wait is not None and rt.cpu + rt.run_queue_wait > 0:
        return wall * rt.cpu / (rt.cpu + rt.run_queue_wait)
    return wall


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, rt in snap.runtime.items():
        age = rt.age_s(snap.now)
        if age is not None and age < cfg.warmup_s:
            continue
        rss = rt.rss
        growth = 0.0
        if len(rss) >= 3 and rss[-1][0] > rss[0][0]:
            growth = mb_per_min(rss[0], rss[-1])
            mid = rss[len(rss) // 2]
            if rss[-1][0] > mid[0]:  # a leak keeps growing; a warm-up (caches, pools filling) levels off
                recent = mb_per_min(mid, rss[-1])
                growth = recent if recent >= growth else min(growth, 2 * recent)  # a leak that began in the window: its rate now
        gc_fraction = gc_cpu_fraction(rt, snap.window_s)
        if growth < cfg.rss_growth_mb_per_min and gc_fraction < cfg.gc_time_fraction:
            continue
        yield Candidate(
            KIND,
            svc,
            "process",
            explained=min(1.0, gc_fraction * 5),
            strength=min(1.0, max(growth / (2 * cfg.rss_growth_mb_per_min), gc_fraction / (4 * cfg.gc_time_fraction))),
            summary=f"RSS grows {growth:.0f} MB/min (now {rss[-1][1] / 1e6:.0f} MB); GC takes {100 * gc_fraction:.1f}% of CPU time"
            if rss
            else f"GC takes {100 * gc_fraction:.1f}% of CPU time",
            evidence={
                "rss_growth_mb_per_min": round(growth, 1),
                "rss_bytes": rss[-1][1] if rss else None,
                "gc_time_fraction": round(gc_fraction, 4),
                "process_age_s": round(age) if age is not None else None,
            },
            recommendation=recommendation(KIND),
        )
