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


def _topic(bootstrap: str) -> str:
    topic = f"kp-lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    producer = kafka_python.KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(SENT):
        producer.send(topic, f"{i}".encode())
    producer.flush(30)
    producer.close()
    return topic


def _broker_end(bootstrap: str, topic: str) -> int:
    other = kafka_python.KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = kafka_python.TopicPartition(topic, 0)
        return other.end_offsets([tp])[tp]
    finally:
        other.close()


def test_kafka_python_lag_is_broker_end_minus_records_taken(metrics, installed, kafka):
    installed.append(KafkaPythonLagProbe(metrics.meter))
    topic = _topic(kafka.bootstrap)
    group = f"g-{uuid.uuid4().hex[:6]}"
    attrs = {signals.ATTR_MESSAGING_CONSUMER_GROUP: group, signals.ATTR_MESSAGING_DESTINATION: topic, signals.ATTR_MESSAGING_PARTITION: "0"}
    consumer = kafka_python.KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=30_000)
    try:
        taken = 0
        for _record in consumer:  # iteration: one record per __next__
            taken += 1
            if taken == 10:
                break
        end = _broker_end(kafka.bootstrap, topic)
        assert end == SENT
        got = metrics.collect()
        assert metrics.value(signals.KAFKA_CONSUMER_HIGH_WATERMARK, attrs, got) == end
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs, got) == end - taken
        assert metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs, got) >= 0
        deadline = time.monotonic() + 30
        while taken < 25 and time.monotonic() < deadline:  # poll(): a batch counts as processed
            taken += sum(len(r) for r in consumer.poll(timeout_ms=1000, max_records=25 - taken).values())
        assert taken == 25
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs) == end - taken
    finally:
        consumer.close()
    assert metrics.points(signals.KAFKA_CONSUMER_LAG, attrs) == []  # a closed consumer is no longer reported
