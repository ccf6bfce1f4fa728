"""Pull-mode lag monitor against a real Kafka broker: produce N, consume and commit M, see lag N−M."""

from __future__ import annotations

import time
import uuid

import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from chokepoint.collector import catalog
from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.lag_monitor import KafkaLagMonitor
from chokepoint.collector.service import CollectorService
from chokepoint.collector.store import Store
from tests.integration.collector_probe import metric_samples, wait_for


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, value=f"order-{i}".encode())
    assert producer.flush(30) == 0


class GroupConsumer:
    """A real consumer-group member that consumes exactly ``n`` more messages and commits them."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self.consumer.subscribe([topic])
        self.position = 0

    def consume_and_commit(self, n: int) -> None:
        got = 0
        deadline = time.monotonic() + 60
        while got < n:
            assert time.monotonic() < deadline, f"consumed only {got}/{n}"
            msg = self.consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            got += 1
            self.position = msg.offset() + 1
        # commit exactly where we are (the messages after `n` stay unconsumed)
        self.consumer.commit(offsets=[TopicPartition(self.topic, 0, self.position)], asynchronous=False)
        self.consumer.pause([TopicPartition(self.topic, 0)])
        self.consumer.seek(TopicPartition(self.topic, 0, self.position))
        self.consumer.resume([TopicPartition(self.topic, 0)])

    def close(self) -> None:
        self.consumer.close()


def test_service_lag_monitor_shows_lag_in_api_and_metrics(kafka, tmp_path):
    topic, group = f"orders-{uuid.uuid4().hex[:8]}", f"billing-{uuid.uuid4().hex[:8]}"
    produce(kafka.bootstrap, topic, 100)
    member = GroupConsumer(kafka.bootstrap, group, topic)
    member.consume_and_commit(40)
    member.close()

    config = CollectorConfig(
        otlp_grpc_port=0, otlp_http_port=0, api_port=0, persist=False, data_dir=tmp_path, kafka_bootstrap=kafka.bootstrap, kafka_poll_interval_s=0.5
    )
    with CollectorService(config) as service:

        def row():
            rows = requests.get(f"{service.api_url}/api/v1/consumer-lag", timeout=10).json()["consumer_lag"]
            return next((r for r in rows if r["group"] == group), None)

        found = wait_for(row)
        assert found is not None, "the lag monitor never reported the group"
        assert (found["topic"], found["partition"], found["committed_offset"], found["log_end_offset"], found["lag"]) == (topic, 0, 40, 100, 60)
        assert found["status"] in catalog.LAG_STATUSES
        assert found["status"] == "OK"  # a steady lag seen for seconds is not yet a stall or a stop

        samples = metric_samples(service.api_url)
        labels = (("group", group), ("partition", "0"), ("topic", topic))
        assert samples[(catalog.CONSUMER_LAG.name, labels)] == 60


def test_monitor_sees_a_growing_lag_as_warn_with_interpolated_time_lag(kafka):
    topic, group = f"events-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"
    store = Store()
    monitor = KafkaLagMonitor(store, kafka.bootstrap, groups=[group])
    produce(kafka.bootstrap, topic, 100)
    member = GroupConsumer(kafka.bootstrap, group, topic)
    try:
        member.consume_and_commit(40)
        assert monitor.poll_once() == 1
        first = store.consumer_lag()[0]
        assert (first["committed_offset"], first["log_end_offset"], first["lag"], first["status"]) == (40, 100, 60, "OK")
        t_first = monitor.history(topic, 0)[0][0]
        for _ in range(2):  # the producers outpace the consumer
            time.sleep(1.0)
            produce(kafka.bootstrap, topic, 50)
            member.consume_and_commit(10)
            assert monitor.poll_once() == 1
        row = store.consumer_lag()[0]
        assert (row["group"], row["topic"], row["partition"]) == (group, topic, 0)
        assert (row["committed_offset"], row["log_end_offset"], row["lag"]) == (60, 200, 140)
        assert row["status"] == "WARN"
        assert [end for _, end in monitor.history(topic, 0)] == [100, 150, 200]
        # offset 60 was produced before the first poll: the time lag is at least the history span
        t_last = monitor.history(topic, 0)[-1][0]
        assert row["time_lag_s"] >= t_last - t_first > 1.5
    finally:
        member.close()
