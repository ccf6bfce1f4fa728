"""``memory_pressure``: RSS keeps growing or GC pauses take a large share of the time.

RSS growth is measured from the first to the last value of the window, capped by twice the
growth over its second half (a leak keeps growing; a warm-up levels off).  Fires on growth
≥ ``rss_growth_mb_per_min`` or GC time ≥ ``gc_time_fraction`` of the window.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.MEMORY_PRESSURE


def mb_per_min(first: tuple[float, float], last: tuple[float, float]) -> float:
    return (last[1] - first[1]) / 1e6 / ((last[0] - first[0]) / 60.0)


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, rt in snap.runtime.items():
        rss = rt.rss
        growth = 0.0
        if len(rss) >= 3 and rss[-1][0] > rss[0][0]:
            growth = mb_per_min(rss[0], rss[-1])
            mid = rss[len(rss) // 2]
            if rss[-1][0] > mid[0]:  # a leak keeps growing; a warm-up (caches, pools filling) levels off
                growth = min(growth, 2 * mb_per_min(mid, rss[-1]))
        gc_fraction = rt.gc_pause_s / snap.window_s if rt.gc_pause_count else 0.0
        if growth < cfg.rss_growth_mb_per_min and gc_fraction < cfg.gc_time_fraction:
            continue
        yield Candidate(
            KIND,
            svc,
            "process",
            explained=min(1.0, gc_fraction * 5),
            strength=min(1.0, max(growth / (2 * cfg.rss_growth_mb_per_min), gc_fraction / (4 * cfg.gc_time_fraction))),
            summary=f"RSS grows {growth:.0f} MB/min (now {rss[-1][1] / 1e6:.0f} MB); GC pauses take {100 * gc_fraction:.1f}% of the time"
            if rss
            else f"GC pauses take {100 * gc_fraction:.1f}% of the time",
            evidence={"rss_growth_mb_per_min": round(growth, 1), "rss_bytes": rss[-1][1] if rss else None, "gc_time_fraction": round(gc_fraction, 4)},
            recommendation=recommendation(KIND),
        )
