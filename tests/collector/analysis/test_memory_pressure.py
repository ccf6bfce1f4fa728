"""memory_pressure: GC as CPU, not wall time; no finding while a process warms up (issue 13 items 8 and 9)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import memory_pressure
from chokepoint.collector.analysis.snapshot import RuntimeStats
from tests.collector.analysis.fixtures import NOW, SVC, rows, snapshot

OLD = NOW - 3600.0  # seen for an hour


def rss_series(start_mb: float, mb_per_min: float, n: int = 12, step_s: float = 5.0) -> list[tuple[float, float]]:
    t0 = NOW - n * step_s
    return [(t0 + i * step_s, (start_mb + mb_per_min * i * step_s / 60.0) * 1e6) for i in range(n)]


def rt(**kw) -> RuntimeStats:
    kw.setdefault("first_seen_s", OLD)
    return RuntimeStats(**kw)


CASES = [
    (
        "a leak: RSS keeps growing",
        rt(rss=rss_series(200, 120)),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.0,
                "strength": 1.0,
                "severity": "warning",
                "evidence": {"rss_growth_mb_per_min": 120.0, "rss_bytes": 310e6, "gc_time_fraction": 0.0, "process_age_s": 3600},
            }
        ],
    ),
    (
        "GC CPU time past the threshold",
        rt(gc_cpu=0.1, gc_pause_s=12.0, gc_pause_count=600),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.5,
                "strength": 0.5,
                "severity": "warning",
                "evidence": {"rss_growth_mb_per_min": 0.0, "rss_bytes": None, "gc_time_fraction": 0.1, "process_age_s": 3600},
            }
        ],
    ),
    # item 8: on a CPU-starved host GC passes take 17 % of wall time but 2.6 % of CPU time
    ("long GC pauses on a CPU-starved host, little GC CPU", rt(gc_cpu=0.026, gc_pause_s=10.2, gc_pause_count=300, cpu=0.3, run_queue_wait=1.6), []),
    ("without GC CPU: the run-queue wait taken out of the pauses", rt(gc_pause_s=10.2, gc_pause_count=300, cpu=0.3, run_queue_wait=1.6), []),
    (
        "without GC CPU or run-queue wait: wall-clock pauses",
        rt(gc_pause_s=6.0, gc_pause_count=300),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.5,
                "strength": 0.5,
                "severity": "warning",
                "evidence": {"rss_growth_mb_per_min": 0.0, "rss_bytes": None, "gc_time_fraction": 0.1, "process_age_s": 3600},
            }
        ],
    ),
    # item 9: the agent's and the app's warm-up: 55 MB/min in the first 24 s
    (
        # flask_leaky_history: flat for the window's first half, then 120 MB/min (the whole window reads 60)
        "a leak that began within the window: its rate now",
        rt(rss=[(NOW - 60.0 + i * 5.0, 200e6) for i in range(6)] + [(NOW - 30.0 + i * 5.0, (200 + 10 * i) * 1e6) for i in range(1, 7)]),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.0,
                "strength": 1.0,
                "severity": "warning",
                "evidence": {"rss_growth_mb_per_min": 120.0, "rss_bytes": 260e6, "gc_time_fraction": 0.0, "process_age_s": 3600},
            }
        ],
    ),
    ("a young process warming up", rt(rss=rss_series(80, 55), first_seen_s=NOW - 24.0), []),
    ("a warm-up that levelled off", rt(rss=rss_series(80, 60, n=6) + [(NOW - 30.0 + i * 5.0, 110e6) for i in range(6)]), []),
    ("flat RSS, little GC", rt(rss=rss_series(120, 0), gc_pause_s=0.3, gc_pause_count=60), []),
]


@pytest.mark.parametrize(("name", "runtime", "expected"), CASES, ids=[c[0] for c in CASES])
def test_memory_pressure(name, runtime, expected):
    assert rows(memory_pressure.rule(snapshot(runtime={SVC: runtime}))) == expected
