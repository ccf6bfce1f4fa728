"""circuit_open, hot_endpoint, cacheable_reads: tables of snapshots → pinned candidates."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import cacheable_reads, circuit_open, hot_endpoint
from chokepoint.collector.analysis.snapshot import BreakerStats, PoolStats
from chokepoint.instrument import signals as sig
from tests.collector.analysis.fixtures import SVC, dep, route, rows, service, snapshot

SEARCH_HOT = service(
    shares={"self": 0.7, "queue": 0.3},
    request_time_s=120.0,
    routes={"/search": route(2400, 900.0, time_s=100.0), "/products": route(600, 15.0, 10.0), "/orders": route(600, 130.0, 12.0, time_s=10.0)},
)
#: every sync route waits on I/O alike and queues for a worker; /products is only the most frequent
ALL_QUEUE_ALIKE = service(
    shares={"self": 0.4, "queue": 0.6},
    request_time_s=160.0,
    routes={
        "/products": route(2400, 900.0, 10.0, time_s=100.0, queue_s=70.0),
        "/search": route(800, 900.0, 10.0, time_s=30.0, queue_s=5.0),
        "/orders": route(800, 900.0, 10.0, time_s=30.0, queue_s=5.0),
    },
)
FULL_WORKERS = [PoolStats(SVC, "worker", "anyio", used=40, max=40, pending=6)]
SETTINGS = "SELECT settings WHERE key = ?"

CASES = [
    (
        circuit_open,
        "an open breaker rejecting calls",
        snapshot(breakers=[BreakerStats(SVC, "payment", state="open", rejected=300.0, calls=400.0, error_rate=0.9, transitions=2.0)]),
        [
            {
                "service": SVC,
                "target": "payment",
                "explained": 0.75,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"state": "open", "rejected": 300.0, "error_rate": 0.9, "transitions": 2.0},
            }
        ],
    ),
    (circuit_open, "a closed breaker", snapshot(breakers=[BreakerStats(SVC, "payment", calls=400.0)]), []),
    (
        hot_endpoint,
        "search holds the workers, the others slow down",
        snapshot([SEARCH_HOT], pools=FULL_WORKERS),
        [
            {
                "service": SVC,
                "target": "/search",
                "explained": 0.911,  # 0.873 + the queue's 0.3 of the rest
                "strength": 0.5,
                "severity": "critical",
                "evidence": {"busy_time_share": 0.873, "starved_routes": ["/orders"], "hot_route_rps": 40.0},  # 100 s of the routes' 114.5 s
            }
        ],
    ),
    (hot_endpoint, "no starved workers (an async service)", snapshot([SEARCH_HOT]), []),
    (hot_endpoint, "the most frequent route, queueing like the rest (busy share 0.375)", snapshot([ALL_QUEUE_ALIKE], pools=FULL_WORKERS), []),
    (
        cacheable_reads,
        "the same read on every request",
        snapshot([service()], deps={(SVC, "db", SETTINGS): dep(1200, 2.0)}, counters={(SVC, sig.DB_REPEATED_READS, SETTINGS): 1140.0}),
        [
            {
                "service": SVC,
                "target": SETTINGS,
                "explained": 0.2,
                "strength": 0.902,
                "severity": "warning",
                "evidence": {"repeated_reads": 1140.0, "calls": 1200, "repeated_ratio": 0.95, "repeated_per_s": 19.0},
            }
        ],
    ),
    (
        cacheable_reads,
        "a read repeated now and then",
        snapshot([service()], deps={(SVC, "db", SETTINGS): dep(1200, 2.0)}, counters={(SVC, sig.DB_REPEATED_READS, SETTINGS): 60.0}),
        [],
    ),
]


@pytest.mark.parametrize(("rule", "name", "snap", "expected"), CASES, ids=[f"{c[0].KIND}: {c[1]}" for c in CASES])
def test_rules(rule, name, snap, expected):
    assert rows(rule.rule(snap)) == expected
