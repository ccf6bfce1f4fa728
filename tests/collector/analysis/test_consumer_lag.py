"""consumer_lag: filed under the consumer process's service, group/topic as target (issue 13 item 4)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis import Analyzer, AnalyzerConfig
from chokepoint.collector.analysis.rules import consumer_lag
from chokepoint.collector.analysis.snapshot import ConsumerLagStats
from chokepoint.collector.catalog import Kind
from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store, StoreConfig
from chokepoint.instrument import signals as sig
from tests.collector.analysis.fixtures import rows, snapshot
from tests.collector.test_analyzer import Clock
from tests.collector.test_ingest import metrics_request, number

EVIDENCE = {"lag": 5000.0, "time_lag_s": 90.0, "lag_growth": 800.0, "statuses": ["WARN"], "partitions": 2}

CASES = [
    (
        "an instrumented consumer falling behind",
        ConsumerLagStats("fulfilment", "orders", lag=5000.0, time_lag_s=90.0, growth=800.0, statuses=("WARN",), partitions=2, service="fulfilment-worker"),
        [
            {
                "service": "fulfilment-worker",
                "target": "fulfilment/orders",
                "explained": 0.5,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {**EVIDENCE, "consumer_service": "fulfilment-worker"},
            }
        ],
    ),
    (
        "the broker's view only: the group's name, and the finding says so",
        ConsumerLagStats("fulfilment", "orders", lag=5000.0, time_lag_s=90.0, growth=800.0, statuses=("WARN",), partitions=2),
        [
            {
                "service": "fulfilment",
                "target": "fulfilment/orders",
                "explained": 0.5,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {**EVIDENCE, "consumer_service": None},
            }
        ],
    ),
    (
        "a young lag that grows",
        ConsumerLagStats("g", "t", lag=150.0, growth=100.0, statuses=("OK",), partitions=1),
        [
            {
                "service": "g",
                "target": "g/t",
                "explained": 0.5,
                "strength": 0.5,
                "severity": "warning",
                "evidence": {"lag": 150.0, "time_lag_s": 0.0, "lag_growth": 100.0, "statuses": ["OK"], "partitions": 1, "consumer_service": None},
            }
        ],
    ),
    ("a steady small lag", ConsumerLagStats("g", "t", lag=50.0, statuses=("OK",), partitions=1), []),
    ("a large lag that shrinks", ConsumerLagStats("g", "t", lag=5000.0, growth=-900.0, statuses=("OK",), partitions=1), []),
]


@pytest.mark.parametrize(("name", "lag", "expected"), CASES, ids=[c[0] for c in CASES])
def test_consumer_lag(name, lag, expected):
    assert rows(consumer_lag.rule(snapshot(lags=[lag]))) == expected


def test_broker_only_summary_says_no_consumer_is_instrumented():
    (c,) = consumer_lag.rule(snapshot(lags=[CASES[1][1]]))
    assert c.summary.endswith("(seen by the broker only: no instrumented consumer reports this group)")


def test_the_agents_lag_lands_under_the_consumer_process_service():
    """Through the ingest: the agent of OTEL_SERVICE_NAME=fulfilment-worker reports group 'fulfilment'."""
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=5), clock=clock)
    ingestor = Ingestor(store)
    for i in range(60):
        clock.t += 1
        attrs = {sig.ATTR_MESSAGING_CONSUMER_GROUP: "fulfilment", sig.ATTR_MESSAGING_DESTINATION: "orders", sig.ATTR_MESSAGING_PARTITION: "0"}
        points = [number(sig.KAFKA_CONSUMER_COMMITTED_OFFSET, 100 + 2 * i, attrs), number(sig.KAFKA_CONSUMER_HIGH_WATERMARK, 100 + 40 * i, attrs)]
        ingestor.consume_metrics(metrics_request("fulfilment-worker", points))
        store.flush_due()
    assert {r["service"] for r in store.consumer_lag()} == {"fulfilment-worker"}
    lag = [f for f in Analyzer(store, AnalyzerConfig(window_s=30, baseline_window_s=60)).analyze() if f.kind == Kind.CONSUMER_LAG]
    assert [(f.service, f.target) for f in lag] == [("fulfilment-worker", "fulfilment/orders")]
