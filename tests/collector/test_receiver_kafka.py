"""The Kafka ingest's pure parts: which signal a record holds, item counts, typed config."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.receiver_kafka import KafkaIngestConfig, count_items, signal_of


@pytest.mark.parametrize(
    ("topic", "headers", "signal"),
    [
        ("otlp_spans", None, "traces"),
        ("otlp_metrics", [], "metrics"),
        ("otlp_logs", None, "logs"),
        ("shop", [("otelcol.signal", b"metrics")], "metrics"),
        ("otlp_spans", [("otelcol.signal", b"metrics")], "metrics"),  # the header wins
        ("shop", None, None),
        ("shop", [("otelcol.signal", b"profiles")], None),
    ],
)
def test_signal_from_header_then_default_topic(topic, headers, signal):
    assert signal_of(topic, headers) == signal


def test_count_items_spans_and_points():
    traces = ExportTraceServiceRequest()
    scope = traces.resource_spans.add().scope_spans.add()
    for _ in range(3):
        scope.spans.add()
    assert count_items("traces", traces) == 3
    metrics = ExportMetricsServiceRequest()
    sm = metrics.resource_metrics.add().scope_metrics.add()
    gauge = sm.metrics.add()
    gauge.gauge.data_points.add()
    gauge.gauge.data_points.add()
    hist = sm.metrics.add()
    hist.histogram.data_points.add()
    sm.metrics.add()  # no data at all
    assert count_items("metrics", metrics) == 3


def test_consumer_config_commits_by_hand_and_moves_little():
    conf = KafkaIngestConfig("b:9092", group_id="g", session_timeout_s=6).consumer_config()
    assert conf["enable.auto.commit"] is False and conf["enable.auto.offset.store"] is False
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert conf["session.timeout.ms"] == 6000 and conf["group.id"] == "g"
    with pytest.raises(ValueError):
        KafkaIngestConfig("")
    with pytest.raises(ValueError):
        KafkaIngestConfig("b:9092", topics=())


def test_collector_config_reads_the_kafka_ingest_variables():
    cfg = CollectorConfig.from_env(
        {
            "CHOKEPOINT_KAFKA_INGEST": "k1:9092,k2:9092",
            "CHOKEPOINT_KAFKA_GROUP": "apm",
            "CHOKEPOINT_KAFKA_TOPICS": "otlp_spans, ^svc-.*,",
            "CHOKEPOINT_KAFKA_SESSION_S": "7",
        }
    )
    assert cfg.kafka_ingest == "k1:9092,k2:9092" and cfg.kafka_group == "apm" and cfg.kafka_session_s == 7.0
    assert cfg.kafka_topic_list == ("otlp_spans", "^svc-.*")
    assert CollectorConfig.from_env({}).kafka_ingest is None
    with pytest.raises(ValueError, match="CHOKEPOINT_KAFKA_SESSION_S"):
        CollectorConfig.from_env({"CHOKEPOINT_KAFKA_SESSION_S": "x"})
