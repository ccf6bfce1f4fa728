"""event_loop_blocked: fires on the loop's own evidence, even when server spans look fast (issue 13 item 1)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import event_loop_blocked
from chokepoint.collector.analysis.snapshot import RuntimeStats
from tests.collector.analysis.fixtures import SVC, rows, service, snapshot

CASES = [
    (
        "a blocking call in an async route, server spans fast: busy loop, long stalls",
        service(degraded=False, worst=("/quote", 12.0), requests=300),
        RuntimeStats(loop_lag_count=600, loop_lag_p99_ms=210.0, loop_late_fraction=0.6, loop_busy=0.85, loop_stall_max_s=0.2),
        [
            {
                "service": SVC,
                "target": "event_loop",
                "explained": 1.0,
                "strength": 0.42,
                "severity": "critical",
                "evidence": {
                    "event_loop_lag_p99_ms": 210.0,
                    "loop_late_fraction": 0.6,
                    "loop_busy": 0.85,
                    "host_cpu_factor": None,
                    "loop_stall_max_ms": 200.0,
                    "throughput_cap_rps": 4.8,
                    "rps": 5.0,
                    "worst_route": "/quote",
                    "worst_p99_ms": 12.0,
                },
            }
        ],
    ),
    (
        "lag in a degraded service, no busy gauge (an older agent)",
        service(worst=("/quote", 300.0)),
        RuntimeStats(loop_lag_count=600, loop_lag_p99_ms=200.0, loop_late_fraction=0.3),
        [
            {
                "service": SVC,
                "target": "event_loop",
                "explained": 0.667,
                "strength": 0.4,
                "severity": "warning",
                "evidence": {
                    "event_loop_lag_p99_ms": 200.0,
                    "loop_late_fraction": 0.3,
                    "loop_busy": None,
                    "host_cpu_factor": None,
                    "loop_stall_max_ms": None,
                    "throughput_cap_rps": 5.0,
                    "rps": 10.0,
                    "worst_route": "/quote",
                    "worst_p99_ms": 300.0,
                },
            }
        ],
    ),
    (
        "an idle loop on a busy host: lag, not busy, requests fast",
        service(degraded=False, worst=("/a", 8.0)),
        RuntimeStats(loop_lag_count=600, loop_lag_p99_ms=120.0, loop_late_fraction=0.05, loop_busy=0.02, loop_stall_max_s=0.12),
        [],
    ),
    (
        # the scenario suite's healthy run on a host at load 17: the loop thread waits for a CPU mid-callback
        "a CPU-starved host: busy and late because the loop waits for a CPU",
        service(degraded=False, worst=("/quote", 60.0)),
        RuntimeStats(cpu=0.15, run_queue_wait=1.1, loop_lag_count=600, loop_lag_p99_ms=250.0, loop_late_fraction=0.5, loop_busy=0.8, loop_stall_max_s=0.3),
        [],
    ),
    (
        "one long stall in a mostly idle, degraded service",
        service(worst=("/a", 400.0)),
        RuntimeStats(loop_lag_count=600, loop_lag_p99_ms=20.0, loop_late_fraction=0.02, loop_busy=0.1, loop_stall_max_s=1.35),
        [],
    ),
    (
        "a busy loop with short callbacks",
        service(degraded=False),
        RuntimeStats(loop_lag_count=600, loop_lag_p99_ms=4.0, loop_busy=0.7, loop_stall_max_s=0.01),
        [],
    ),
    ("no loop at all (a sync service)", service(), RuntimeStats(cpu=0.2), []),
]


@pytest.mark.parametrize(("name", "svc", "runtime", "expected"), CASES, ids=[c[0] for c in CASES])
def test_event_loop_blocked(name, svc, runtime, expected):
    assert rows(event_loop_blocked.rule(snapshot([svc], runtime={SVC: runtime}))) == expected


def test_summary_states_the_throughput_cap():
    svc, runtime, _ = CASES[0][1:]
    (c,) = event_loop_blocked.rule(snapshot([svc], runtime={SVC: runtime}))
    assert c.summary == (
        "The asyncio event loop lags 210 ms (p99), busy 85% of the time, longest stall 200 ms: blocking calls run on the loop;"
        " one stall at a time caps it near 4.8 requests/s (now 5/s)"
    )
