"""slow_query: table of snapshots → pinned candidates; statements only (issue 13 items 5 and 9)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import slow_query
from chokepoint.collector.analysis.snapshot import RuntimeStats
from chokepoint.collector.analysis.statements import CONNECTION, SCHEMA, STATEMENT, TRANSACTION, statement_kind
from tests.collector.analysis.fixtures import SVC, dep, rows, service, snapshot

SEARCH = "SELECT products WHERE lower(name) LIKE ?"
DB_BOUND = service(shares={"db": 0.8, "self": 0.2})

CASES = [
    (
        "one statement dominates DB time",
        snapshot([DB_BOUND], deps={(SVC, "db", SEARCH): dep(300, 900.0, 450.0, time_s=135.0), (SVC, "db", "SELECT users"): dep(900, 4.0, 2.0, time_s=15.0)}),
        [
            {
                "service": SVC,
                "target": SEARCH,
                "explained": 0.72,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"query_p99_ms": 900.0, "query_p50_ms": 450.0, "calls": 300, "share_of_db_time": 0.9},
            }
        ],
    ),
    (
        # item 5: the span named by the DB system spans the transaction (an HTTP call inside it)
        "a span named by the DB system is no statement",
        snapshot([DB_BOUND], deps={(SVC, "db", "postgresql"): dep(300, 1010.0, statement=False), (SVC, "db", "SELECT users"): dep(900, 2.0)}),
        [],
    ),
    (
        # item 9: start-up connects and schema statements
        "connect and schema spans are no statements",
        snapshot([DB_BOUND], deps={(SVC, "db", "connect"): dep(20, 151.0, statement=False), (SVC, "db", "CREATE TABLE users"): dep(5, 80.0, statement=False)}),
        [],
    ),
    (
        "a slow statement the requests do not feel",
        snapshot([service(degraded=False, shares={"db": 0.8, "self": 0.2})], deps={(SVC, "db", SEARCH): dep(300, 900.0)}),
        [],
    ),
    ("a one-off slow statement", snapshot([DB_BOUND], deps={(SVC, "db", SEARCH): dep(2, 900.0)}), []),
    ("fast statements", snapshot([DB_BOUND], deps={(SVC, "db", SEARCH): dep(300, 20.0)}), []),
    (
        # flask_pg_healthy_bursty on a host at load 20-24: an indexed lookup, 2 ms at the median
        "a fast statement whose tail is the wait for a CPU",
        snapshot([DB_BOUND], deps={(SVC, "db", SEARCH): dep(300, 180.0, 2.0)}, runtime={SVC: RuntimeStats(cpu=0.05, run_queue_wait=0.4)}),
        [],
    ),
]


@pytest.mark.parametrize(("name", "snap", "expected"), CASES, ids=[c[0] for c in CASES])
def test_slow_query(name, snap, expected):
    assert rows(slow_query.rule(snap)) == expected


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("SELECT products WHERE id = ?", STATEMENT),
        ("SELECT orders", STATEMENT),
        ("INSERT INTO orders (customer) VALUES (?)", STATEMENT),
        ("GET", STATEMENT),  # a Redis command
        ("postgresql", CONNECTION),
        ("mysql", CONNECTION),
        ("sqlite", CONNECTION),
        ("connect", CONNECTION),
        ("", CONNECTION),
        ("BEGIN", TRANSACTION),
        ("COMMIT", TRANSACTION),
        ("rollback", TRANSACTION),
        ("SAVEPOINT sa_savepoint_1", TRANSACTION),
        ("CREATE TABLE users (id integer)", SCHEMA),
        ("ALTER TABLE users ADD COLUMN x int", SCHEMA),
        ("DROP INDEX ix_users", SCHEMA),
    ],
)
def test_statement_kind(target, kind):
    assert statement_kind(target) == kind
