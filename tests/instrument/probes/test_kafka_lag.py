"""Kafka lag probe bookkeeping with a fake consumer (the real broker is in tests/integration)."""

from __future__ import annotations

import time

import confluent_kafka
from confluent_kafka import TopicPartition

from chokepoint.instrument import signals
from chokepoint.instrument.probes.kafka_lag import KafkaLagProbe

ATTRS = {signals.ATTR_MESSAGING_CONSUMER_GROUP: "billing", signals.ATTR_MESSAGING_DESTINATION: "orders", signals.ATTR_MESSAGING_PARTITION: "0"}


class FakeMessage:
    def __init__(self, offset, ts_s, error=None):
        self._offset, self._ts, self._error = offset, ts_s, error

    def error(self):
        return self._error

    def topic(self):
        return "orders"

    def partition(self):
        return 0

    def offset(self):
        return self._offset

    def timestamp(self):
        return (confluent_kafka.TIMESTAMP_CREATE_TIME, int(self._ts * 1000))


class FakeConsumer:
    """Answers like a consumer assigned orders[0] with a committed offset and a high watermark."""

    def __init__(self, committed=0, high=0):
        self.committed_offset, self.high, self.broker_queries, self.closed = committed, high, 0, False

    def _check(self):
        if self.closed:
            raise RuntimeError("Consumer closed")

    def assignment(self):
        self._check()
        return [TopicPartition("orders", 0)]

    def committed(self, partitions, timeout=None):
        self._check()
        self.broker_queries += 1
        return [TopicPartition(p.topic, p.partition, self.committed_offset) for p in partitions]

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        self._check()
        if not cached:
            self.broker_queries += 1
        return (0, self.high)


def _probe(metrics, installed, refresh_interval_s):
    probe = KafkaLagProbe(metrics.meter, refresh_interval_s=refresh_interval_s)
    installed.append(probe)
    return probe


def test_lag_from_committed_offset_before_any_record_is_processed(metrics, installed):
    probe = _probe(metrics, installed, 0)
    consumer = FakeConsumer(committed=40, high=100)
    probe.track(consumer, ({"group.id": "billing"},), {})
    got = metrics.collect()
    assert metrics.value(signals.KAFKA_CONSUMER_LAG, ATTRS, got) == 60
    assert metrics.value(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, ATTRS, got) == 40
    assert metrics.value(signals.KAFKA_CONSUMER_HIGH_WATERMARK, ATTRS, got) == 100
    assert metrics.points(signals.KAFKA_CONSUMER_TIME_LAG, ATTRS, got) == []  # no record seen yet


def test_processed_records_move_the_position_and_time_lag(metrics, installed):
    probe = _probe(metrics, installed, 0)
    consumer = FakeConsumer(committed=0, high=10)
    probe.track(consumer, (), {"group.id": "billing"})
    now = time.time()
    probe.seen(consumer, [FakeMessage(6, now - 30), FakeMessage(7, now - 20), FakeMessage(8, None, error="partition EOF")])
    got = metrics.collect()
    assert metrics.value(signals.KAFKA_CONSUMER_LAG, ATTRS, got) == 2  # high 10 − next offset 8
    assert 19.5 <= metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, ATTRS, got) < 25  # behind: now − last record
    probe.seen(consumer, [FakeMessage(9, now - 1)])
    consumer.high = 10
    got = metrics.collect()
    assert metrics.value(signals.KAFKA_CONSUMER_LAG, ATTRS, got) == 0
    assert 1.0 <= metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, ATTRS, got) < 5  # caught up: lag at processing


def test_broker_is_queried_at_most_once_per_refresh_interval(metrics, installed):
    probe = _probe(metrics, installed, 3600)
    consumer = FakeConsumer(committed=0, high=5)
    probe.track(consumer, ({"group.id": "billing"},), {})
    metrics.collect()
    metrics.collect()
    metrics.collect()
    assert consumer.broker_queries == 2  # one committed() + one watermark query, once


def test_closed_consumer_is_dropped_without_errors(metrics, installed):
    probe = _probe(metrics, installed, 0)
    consumer = FakeConsumer(committed=0, high=5)
    probe.track(consumer, ({"group.id": "billing"},), {})
    assert metrics.value(signals.KAFKA_CONSUMER_LAG, ATTRS) == 5
    consumer.closed = True
    assert signals.KAFKA_CONSUMER_LAG not in metrics.collect()
    assert consumer not in probe.consumers


def test_consumer_class_is_replaced_and_restored(metrics):
    original, original_deserializing = confluent_kafka.Consumer, confluent_kafka.DeserializingConsumer
    probe = KafkaLagProbe(metrics.meter)
    assert confluent_kafka.Consumer is probe.consumer_class and issubclass(probe.consumer_class, original)
    assert issubclass(confluent_kafka.DeserializingConsumer, original_deserializing)
    probe.uninstall()
    assert confluent_kafka.Consumer is original and confluent_kafka.DeserializingConsumer is original_deserializing


def test_nothing_committed_counts_from_the_log_start_when_reading_from_the_earliest(metrics, installed):
    probe = _probe(metrics, installed, 0)
    early, late = FakeConsumer(committed=-1001, high=100), FakeConsumer(committed=-1001, high=100)
    probe.track(early, ({"group.id": "billing", "auto.offset.reset": "earliest"},), {})
    probe.track(late, ({"group.id": "late"},), {})  # latest: it will start at the end, its lag is not known yet
    got = metrics.collect()
    assert metrics.value(signals.KAFKA_CONSUMER_LAG, ATTRS, got) == 100
    assert metrics.points(signals.KAFKA_CONSUMER_LAG, {**ATTRS, signals.ATTR_MESSAGING_CONSUMER_GROUP: "late"}, got) == []
    assert metrics.points(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, ATTRS, got) == []  # the log start is no committed offset
