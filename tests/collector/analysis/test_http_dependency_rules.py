"""The outbound-call rules: external_dependency_slow, missing_timeout, retry_storm, connection_held_during_external_call."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import connection_held_during_external_call, external_dependency_slow, missing_timeout, retry_storm
from chokepoint.collector.analysis.snapshot import PoolStats
from chokepoint.instrument import signals as sig
from tests.collector.analysis.fixtures import SVC, dep, rows, service, snapshot

PAY = "payment:8001"
ON_PAYMENT = service(shares={"http:payment:8001": 0.9, "self": 0.1})
SLOW_PAY = {(SVC, "http", PAY): dep(600, 320.0, 300.0, errors=3)}
FAST_PAY = {(SVC, "http", PAY): dep(600, 12.0, 8.0)}

CASES = [
    (
        external_dependency_slow,
        "a slow dependency takes most of the slow time",
        snapshot([ON_PAYMENT], deps=SLOW_PAY),
        [
            {
                "service": SVC,
                "target": PAY,
                "explained": 0.9,
                "strength": 0.32,
                "severity": "warning",
                "evidence": {"dependency_p99_ms": 320.0, "dependency_p50_ms": 300.0, "share_of_slow_time": 0.9, "calls": 600, "errors": 3},
            }
        ],
    ),
    (external_dependency_slow, "a fast dependency", snapshot([ON_PAYMENT], deps=FAST_PAY), []),
    (external_dependency_slow, "slow but a small share", snapshot([service(shares={"http:payment:8001": 0.1, "self": 0.9})], deps=SLOW_PAY), []),
    (
        missing_timeout,
        "no timeout against a slow dependency",
        snapshot([ON_PAYMENT], deps=SLOW_PAY, counters={(SVC, sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, PAY): 600.0}),
        [
            {
                "service": SVC,
                "target": PAY,
                "explained": 0.9,
                "strength": 0.32,
                "severity": "critical",
                "evidence": {"calls_without_timeout": 600.0, "fraction_of_calls": 1.0, "dependency_p99_ms": 320.0},
            }
        ],
    ),
    (
        missing_timeout,
        "no timeout against a fast dependency: a warning sign only",
        snapshot([ON_PAYMENT], deps=FAST_PAY, counters={(SVC, sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, PAY): 300.0}),
        [
            {
                "service": SVC,
                "target": PAY,
                "explained": 0.0,
                "strength": 0.15,
                "severity": "info",
                "evidence": {"calls_without_timeout": 300.0, "fraction_of_calls": 0.5, "dependency_p99_ms": 12.0},
            }
        ],
    ),
    (
        retry_storm,
        "four retries per call",
        snapshot([ON_PAYMENT], deps=SLOW_PAY, counters={(SVC, sig.HTTP_CLIENT_RETRIES, PAY): 2400.0}),
        [
            {
                "service": SVC,
                "target": PAY,
                "explained": 0.9,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"retries": 2400.0, "calls": 600, "retries_per_call": 4.0},
            }
        ],
    ),
    (retry_storm, "a retry now and then", snapshot([ON_PAYMENT], deps=SLOW_PAY, counters={(SVC, sig.HTTP_CLIENT_RETRIES, PAY): 6.0}), []),
    (
        connection_held_during_external_call,
        "every call inside the transaction, requests wait for connections",
        snapshot(
            [service(shares={"pool_wait": 0.5, "http:payment:8001": 0.45, "self": 0.05})],
            deps={(SVC, "http", PAY): dep(600, 300.0)},
            pools=[PoolStats(SVC, "db", "sqlalchemy:postgresql", used=10, max=10, pending=8, wait_p99_ms=310.0, wait_count=600)],
            counters={(SVC, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION, PAY): 600.0},
        ),
        [
            {
                "service": SVC,
                "target": PAY,
                "explained": 0.95,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"calls_in_transaction": 600.0, "fraction_of_calls": 1.0, "dependency_p99_ms": 300.0, "pool_wait_p99_ms": 310.0},
            }
        ],
    ),
    (connection_held_during_external_call, "no call inside a transaction", snapshot([ON_PAYMENT], deps=SLOW_PAY), []),
]


@pytest.mark.parametrize(("rule", "name", "snap", "expected"), CASES, ids=[f"{c[0].KIND}: {c[1]}" for c in CASES])
def test_outbound_call_rules(rule, name, snap, expected):
    assert rows(rule.rule(snap)) == expected
