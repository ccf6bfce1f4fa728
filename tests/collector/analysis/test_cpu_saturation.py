"""cpu_saturation: CPU demand (used + run-queue wait) near a core in a degraded service."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import cpu_saturation
from chokepoint.collector.analysis.snapshot import RuntimeStats
from tests.collector.analysis.fixtures import SVC, rows, service, snapshot

COMPUTING = service(shares={"self": 0.9, "db": 0.1}, worst=("/recommendations", 300.0), self_time_s=100.0, breakdown_requests=600)


def evidence(**kw):
    return {"worst_route": "/recommendations", "worst_p99_ms": 300.0, "self_time_share": 0.9, **kw}


CASES = [
    (
        "a core used",
        COMPUTING,
        RuntimeStats(cpu=0.98),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.9,
                "strength": 0.96,
                "severity": "critical",
                "evidence": evidence(cpu_utilization=0.98, run_queue_wait=None, cpu_demand=0.98, cpu_per_self_time=0.588),
            }
        ],
    ),
    (
        "starved on a shared host: uses 0.6, waits 0.35",
        COMPUTING,
        RuntimeStats(cpu=0.6, run_queue_wait=0.35),
        [
            {
                "service": SVC,
                "target": "process",
                "explained": 0.9,
                "strength": 0.9,
                "severity": "critical",
                "evidence": evidence(cpu_utilization=0.6, run_queue_wait=0.35, cpu_demand=0.95, cpu_per_self_time=0.36),
            }
        ],
    ),
    ("sleeping workers that wait a little at each wake-up", COMPUTING, RuntimeStats(cpu=0.1, run_queue_wait=0.9), []),
    ("CPU-bound but the requests are fine", service(degraded=False), RuntimeStats(cpu=0.98), []),
    (
        "half a core, mostly waiting on I/O, no wait signal",
        service(shares={"self": 0.9}, self_time_s=600.0, breakdown_requests=600),
        RuntimeStats(cpu=0.55),
        [],
    ),
]


@pytest.mark.parametrize(("name", "svc", "runtime", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cpu_saturation(name, svc, runtime, expected):
    assert rows(cpu_saturation.rule(snapshot([svc], runtime={SVC: runtime}))) == expected
