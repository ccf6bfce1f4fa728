"""Kafka consumer-lag probe against the real broker: lag grows while paused, drains after."""

from __future__ import annotations

import time
import uuid

import confluent_kafka

from chokepoint.instrument import signals
from chokepoint.instrument.probes.kafka_lag import KafkaLagProbe
from tests.instrument.probes.points import Metrics
from tests.instrument.shared import kafka_topic


def _poll_n(consumer, n, timeout=30.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg)
    assert len(got) == n, f"polled {len(got)} of {n}"
    return got


def test_offset_and_time_lag_grow_while_paused_and_drain_after(kafka):
    (topic, produce), group = kafka_topic(kafka, "orders"), f"billing-{uuid.uuid4().hex[:6]}"

    metrics = Metrics()
    probe = KafkaLagProbe(metrics.meter, refresh_interval_s=0)
    try:
        consumer = confluent_kafka.Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
        assert isinstance(consumer, probe.consumer_class)
        consumer.subscribe([topic])
        attrs = {signals.ATTR_MESSAGING_CONSUMER_GROUP: group, signals.ATTR_MESSAGING_DESTINATION: topic, signals.ATTR_MESSAGING_PARTITION: "0"}

        produce(5)
        _poll_n(consumer, 5)
        consumer.commit(asynchronous=False)
        got = metrics.collect()
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs, got) == 0
        assert metrics.value(signals.KAFKA_CONSUMER_HIGH_WATERMARK, attrs, got) == 5
        assert metrics.value(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, attrs, got) == 5

        consumer.pause(consumer.assignment())
        produce(20)
        time.sleep(1.0)
        assert consumer.poll(0.5) is None  # paused: nothing is delivered
        got = metrics.collect()
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs, got) == 20
        paused_time_lag = metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs, got)
        assert paused_time_lag >= 1.0  # behind since the last processed record
        time.sleep(0.5)
        assert metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs) >= paused_time_lag + 0.4  # still growing

        consumer.resume(consumer.assignment())
        drained, deadline = 0, time.monotonic() + 30
        while drained < 20 and time.monotonic() < deadline:  # consume() this time, not poll()
            drained += sum(1 for m in consumer.consume(num_messages=50, timeout=0.5) if m.error() is None)
        assert drained == 20
        got = metrics.collect()
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs, got) == 0
        caught_up_time_lag = metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs, got)
        time.sleep(0.3)
        assert metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs) == caught_up_time_lag  # caught up: no longer growing
        consumer.close()
        assert signals.KAFKA_CONSUMER_LAG not in metrics.collect()  # closed consumers are dropped
    finally:
        probe.uninstall()
        metrics.close()
    assert confluent_kafka.Consumer is not probe.consumer_class


def test_aiokafka_lag_grows_while_paused_and_drains_after(kafka):
    import asyncio

    import aiokafka

    from chokepoint.instrument.probes.kafka_lag import AiokafkaLagProbe

    (topic, produce), group = kafka_topic(kafka, "payments"), f"ledger-{uuid.uuid4().hex[:6]}"

    metrics = Metrics()
    probe = AiokafkaLagProbe(metrics.meter, refresh_interval_s=0)
    attrs = {signals.ATTR_MESSAGING_CONSUMER_GROUP: group, signals.ATTR_MESSAGING_DESTINATION: topic, signals.ATTR_MESSAGING_PARTITION: "0"}

    async def lag_after_refresh():
        metrics.collect()  # schedules the broker queries on this loop
        await asyncio.sleep(0.5)
        return metrics.value(signals.KAFKA_CONSUMER_LAG, attrs)

    async def consume(consumer, n):
        got = 0
        while got < n:
            batches = await consumer.getmany(timeout_ms=500)
            got += sum(len(records) for records in batches.values())
        assert got == n

    async def main():
        consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=group, auto_offset_reset="earliest")
        await consumer.start()
        try:
            produce(5)
            await asyncio.wait_for(consume(consumer, 5), 30)
            await consumer.commit()
            assert await lag_after_refresh() == 0
            consumer.pause(*consumer.assignment())
            produce(20)
            await asyncio.sleep(0.5)
            assert await consumer.getmany(timeout_ms=200) == {}
            paused_lag = await lag_after_refresh()
            got = metrics.collect()
            paused_time_lag = metrics.value(signals.KAFKA_CONSUMER_TIME_LAG, attrs, got)
            committed = metrics.value(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, attrs, got)
            consumer.resume(*consumer.assignment())
            await asyncio.wait_for(consume(consumer, 20), 30)
            drained_lag = await lag_after_refresh()
            return paused_lag, paused_time_lag, committed, drained_lag
        finally:
            await consumer.stop()

    try:
        paused_lag, paused_time_lag, committed, drained_lag = asyncio.run(main())
        assert paused_lag == 20
        assert paused_time_lag >= 0.5
        assert committed == 5
        assert drained_lag == 0
        assert signals.KAFKA_CONSUMER_LAG not in metrics.collect()  # stopped consumers are dropped
    finally:
        probe.uninstall()
        metrics.close()


def test_deserializing_consumer_is_tracked(kafka):
    from confluent_kafka.serialization import StringDeserializer

    (topic, produce), group = kafka_topic(kafka, "events"), f"audit-{uuid.uuid4().hex[:6]}"
    produce(3)

    metrics = Metrics()
    probe = KafkaLagProbe(metrics.meter, refresh_interval_s=0)
    try:
        consumer = confluent_kafka.DeserializingConsumer(
            {"bootstrap.servers": kafka.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "value.deserializer": StringDeserializer("utf_8")}
        )
        consumer.subscribe([topic])
        assert [m.value() for m in _poll_n(consumer, 3)] == ["event-0", "event-1", "event-2"]
        attrs = {signals.ATTR_MESSAGING_CONSUMER_GROUP: group, signals.ATTR_MESSAGING_DESTINATION: topic, signals.ATTR_MESSAGING_PARTITION: "0"}
        got = metrics.collect()
        assert metrics.value(signals.KAFKA_CONSUMER_LAG, attrs, got) == 0
        assert metrics.value(signals.KAFKA_CONSUMER_HIGH_WATERMARK, attrs, got) == 3
        consumer.close()
    finally:
        probe.uninstall()
        metrics.close()
