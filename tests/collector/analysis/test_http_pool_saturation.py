"""http_pool_saturation: requests wait for an outbound connection while the dependency answers fast."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import http_pool_saturation
from chokepoint.collector.analysis.snapshot import PoolStats
from tests.collector.analysis.fixtures import SVC, dep, rows, service, snapshot

TARGET = "payment:8001"
# a client call's p99 includes its wait for a connection: dep(n, wait p99 + the call's own time)
WAITING = service(shares={"pool_wait": 0.8, "http:payment:8001": 0.1, "self": 0.1})

CASES = [
    (
        "a one-connection client pool, fast calls",
        snapshot(
            [WAITING],
            pools=[PoolStats(SVC, "http", TARGET, used=1, max=1, pending=9, wait_p99_ms=270.0, wait_count=900)],
            deps={(SVC, "http", TARGET): dep(900, 276.0)},
        ),
        [
            {
                "service": SVC,
                "target": TARGET,
                "explained": 0.8,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"pool_used": 1, "pool_max": 1, "pending": 9, "wait_p99_ms": 270.0, "dependency_p99_ms": 6.0, "timeouts": 0.0},
            }
        ],
    ),
    (
        "a DB pool waited on too: the pool_wait share split by wait",
        snapshot(
            [WAITING],
            pools=[
                PoolStats(SVC, "http", TARGET, used=10, max=10, pending=4, wait_p99_ms=300.0, wait_count=400, timeouts=2),
                PoolStats(SVC, "db", "sqlalchemy:postgresql", used=10, max=10, pending=4, wait_p99_ms=100.0, wait_count=400),
            ],
            deps={(SVC, "http", TARGET): dep(400, 320.0)},
        ),
        [
            {
                "service": SVC,
                "target": TARGET,
                "explained": 0.6,
                "strength": 1.2,
                "severity": "critical",
                "evidence": {"pool_used": 10, "pool_max": 10, "pending": 4, "wait_p99_ms": 300.0, "dependency_p99_ms": 20.0, "timeouts": 2},
            }
        ],
    ),
    (
        "the dependency itself is slow: external_dependency_slow's",
        snapshot(
            [WAITING],
            pools=[PoolStats(SVC, "http", TARGET, used=4, max=4, pending=2, wait_p99_ms=300.0, wait_count=90)],
            deps={(SVC, "http", TARGET): dep(90, 1200.0)},
        ),
        [],
    ),
    ("an idle client pool", snapshot([WAITING], pools=[PoolStats(SVC, "http", TARGET, used=1, max=10, pending=0, wait_p99_ms=0.5, wait_count=900)]), []),
]


def test_a_urllib3_pool_name_finds_its_dependency():
    snap = snapshot(
        [WAITING],
        pools=[PoolStats(SVC, "http", "http://127.0.0.1:8001", used=1, max=1, pending=3, wait_p99_ms=200.0, wait_count=500)],
        deps={(SVC, "http", "127.0.0.1"): dep(500, 205.0), (SVC, "http", "slow.example"): dep(50, 150.0)},
    )
    assert [c.evidence["dependency_p99_ms"] for c in http_pool_saturation.rule(snap)] == [5.0]
    assert http_pool_saturation.target_names("httpx:https://api.example:8443") == ["httpx:https://api.example:8443", "api.example:8443", "api.example"]


@pytest.mark.parametrize(("name", "snap", "expected"), CASES, ids=[c[0] for c in CASES])
def test_http_pool_saturation(name, snap, expected):
    assert rows(http_pool_saturation.rule(snap)) == expected
