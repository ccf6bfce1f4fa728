"""kafka-python lag probe against a real broker: iteration and ``poll()`` move the position.

Ground truth from outside the probe: the broker's own end offsets (a second consumer's
``end_offsets()``) minus the records the test itself took from the consumer.
"""

from __future__ import annotations

import time
import uuid

import kafka as kafka_python
from confluent_kafka.admin import AdminClient, NewTopic

from chokepoint.instrument import signals
from chokepoint.instrument.probes.kafka_lag import KafkaPythonLagProbe

SENT = 60


def lag(metrics, attrs, got=None) -> float:
    points = metrics.points(signals.KAFKA_CONSUMER_LAG, attrs, got)
    assert len(points) == 2
    return sum(p.value for p in points)


def _topic(bootstrap: str, partitions: int) -> str:
    topic = f"kp-lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)
    producer = kafka_python.KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(SENT):
        producer.send(topic, f"{i}".encode(), partition=i % partitions)
    producer.flush(30)
    producer.close()
    return topic


def _broker_ends(bootstrap: str, topic: str, partitions: int) -> list[int]:
    other = kafka_python.KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [kafka_python.TopicPartition(topic, n) for n in range(partitions)]
        ends = other.end_offsets(tps)
        return [ends[tp] for tp in tps]
    finally:
        other.close()


def test_kafka_python_lag_is_broker_end_minus_records_taken(metrics, installed, kafka):
    installed.append(KafkaPythonLagProbe(metrics.meter))
    topic = _topic(kafka.bootstrap, partitions=2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    attrs = {signals.ATTR_MESSAGING_CONSUMER_GROUP: group, signals.ATTR_MESSAGING_DESTINATION: topic}
    consumer = kafka_python.KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=30_000)
    try:
        taken = 0
        for _record in consumer:  # iteration: one record per __next__
            taken += 1
            if taken == 10:
                break
        ends = _broker_ends(kafka.bootstrap, topic, 2)
        assert sum(ends) == SENT
        got = metrics.collect()
        assert sorted(p.value for p in metrics.points(signals.KAFKA_CONSUMER_HIGH_WATERMARK, attrs, got)) == sorted(ends)
        # both partitions, the one not read from yet included (from the consumer's fetch position)
        assert lag(metrics, attrs, got) == sum(ends) - taken
        deadline = time.monotonic() + 30
        while taken < 25 and time.monotonic() < deadline:  # poll(): a batch counts as processed
            taken += sum(len(r) for r in consumer.poll(timeout_ms=1000, max_records=25 - taken).values())
        assert taken == 25
        assert lag(metrics, attrs) == sum(ends) - taken
    finally:
        consumer.close()
    assert metrics.points(signals.KAFKA_CONSUMER_LAG, attrs) == []  # a closed consumer is no longer reported
