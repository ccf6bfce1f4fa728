"""db_pool_saturation: table of snapshots → pinned candidates."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import db_pool_saturation
from chokepoint.collector.analysis.snapshot import PoolStats
from chokepoint.instrument import signals as sig
from tests.collector.analysis.fixtures import SVC, dep, rows, service, snapshot

POOL = "sqlalchemy:postgresql"
WAITING = service(shares={"pool_wait": 0.9, "db": 0.05, "self": 0.05})


def pool(**kw) -> PoolStats:
    return PoolStats(SVC, kw.pop("kind", "db"), POOL, **kw)


CASES = [
    (
        "exhausted pool, fast statements",
        snapshot(
            [WAITING],
            pools=[pool(used=10, max=10, pending=12, wait_p99_ms=380.0, wait_count=400)],
            deps={(SVC, "db", "SELECT orders"): dep(400, 4.0)},
            counters={(SVC, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION, "payment:8001"): 3.0},
        ),
        [
            {
                "service": SVC,
                "target": POOL,
                "explained": 0.9,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {
                    "pool_used": 10,
                    "pool_max": 10,
                    "pending": 12,
                    "wait_p99_ms": 380.0,
                    "query_p99_ms": 4.0,
                    "timeouts": 0.0,
                    "calls_in_transaction": 3.0,
                },
            }
        ],
    ),
    (
        # issue 13 item 5: a span named by the DB system (a whole transaction) is no statement
        "a transaction-level span is not query time",
        snapshot(
            [WAITING],
            pools=[pool(used=15, max=15, pending=6, wait_p99_ms=811.0, wait_count=300)],
            deps={(SVC, "db", "postgresql"): dep(300, 1010.0, statement=False), (SVC, "db", "SELECT users"): dep(900, 2.0)},
        ),
        [
            {
                "service": SVC,
                "target": POOL,
                "explained": 0.9,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {
                    "pool_used": 15,
                    "pool_max": 15,
                    "pending": 6,
                    "wait_p99_ms": 811.0,
                    "query_p99_ms": 2.0,
                    "timeouts": 0.0,
                    "calls_in_transaction": 0.0,
                },
            }
        ],
    ),
    (
        "timeouts add strength; no breakdown: wait over the worst route",
        snapshot(
            [service(worst=("/orders", 400.0))],
            pools=[pool(used=2, max=2, pending=0, wait_p99_ms=100.0, wait_count=5, timeouts=4)],
        ),
        [
            {
                "service": SVC,
                "target": POOL,
                "explained": 0.25,
                "strength": 0.7,
                "severity": "warning",
                "evidence": {
                    "pool_used": 2,
                    "pool_max": 2,
                    "pending": 0,
                    "wait_p99_ms": 100.0,
                    "query_p99_ms": 0.0,
                    "timeouts": 4,
                    "calls_in_transaction": 0.0,
                },
            }
        ],
    ),
    (
        "statements slower than the wait: slow_query's",
        snapshot([WAITING], pools=[pool(used=10, max=10, pending=3, wait_p99_ms=100.0, wait_count=50)], deps={(SVC, "db", "SELECT x"): dep(50, 300.0)}),
        [],
    ),
    ("a few slow checkouts of a quiet pool (warming up)", snapshot([WAITING], pools=[pool(used=1, max=2, pending=0, wait_p99_ms=60.0, wait_count=3)]), []),
    ("fast checkouts", snapshot([WAITING], pools=[pool(used=3, max=10, pending=0, wait_p99_ms=1.0, wait_count=900)]), []),
    ("an http pool is not a DB pool", snapshot([WAITING], pools=[pool(kind="http", used=1, max=1, pending=5, wait_p99_ms=300.0, wait_count=90)]), []),
]


@pytest.mark.parametrize(("name", "snap", "expected"), CASES, ids=[c[0] for c in CASES])
def test_db_pool_saturation(name, snap, expected):
    assert rows(db_pool_saturation.rule(snap)) == expected


def test_summary_names_peak_gauges_and_statement_time():
    (c,) = db_pool_saturation.rule(CASES[1][1])
    assert c.summary == "Requests wait 811 ms (p99) for a DB connection; pool 15/15 busy at peak, 6 waiting at peak; statements themselves take 2 ms (p99)"
