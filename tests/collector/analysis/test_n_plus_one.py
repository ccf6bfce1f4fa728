"""n_plus_one: mean DB queries per request past the threshold."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import n_plus_one
from chokepoint.instrument import signals as sig
from tests.collector.analysis.fixtures import SVC, rows, service, snapshot


def queries(route: str, per_request: float, requests: float) -> dict:
    return {(SVC, sig.REQUEST_DB_QUERIES + ".sum", route): per_request * requests, (SVC, sig.REQUEST_DB_QUERIES + ".count", route): requests}


CASES = [
    (
        "51 queries per request",
        snapshot([service(shares={"db": 0.8, "self": 0.2})], counters=queries("/orders", 51, 600)),
        [
            {
                "service": SVC,
                "target": "/orders",
                "explained": 0.8,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {"queries_per_request": 51.0, "requests": 600},
            }
        ],
    ),
    (
        "no breakdown: a fixed share",
        snapshot([service()], counters=queries("/orders", 12, 100)),
        [
            {
                "service": SVC,
                "target": "/orders",
                "explained": 0.3,
                "strength": 0.4,
                "severity": "info",
                "evidence": {"queries_per_request": 12.0, "requests": 100},
            }
        ],
    ),
    ("two queries per request", snapshot([service()], counters=queries("/orders", 2, 600)), []),
    ("too few requests", snapshot([service()], counters=queries("/orders", 51, 2)), []),
]


@pytest.mark.parametrize(("name", "snap", "expected"), CASES, ids=[c[0] for c in CASES])
def test_n_plus_one(name, snap, expected):
    assert rows(n_plus_one.rule(snap)) == expected
