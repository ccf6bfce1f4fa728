"""Kafka ingest against a real broker: OTLP protobuf records in, offsets committed only for
persisted buckets, duplicates after a restart dropped and counted."""

from __future__ import annotations

import sqlite3
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from tests.integration.collector_probe import metric_samples, server_spans, wait_for

SPANS_PER_RECORD = 20


def produce_spans(bootstrap: str, topic: str, service: str, records: int, headers=None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(records):
        producer.produce(topic, value=server_spans(service, "/orders", SPANS_PER_RECORD, first_trace_id=1 + i * SPANS_PER_RECORD), headers=headers)
    assert producer.flush(30) == 0


def committed(bootstrap: str, group: str, topic: str) -> int:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = probe.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        probe.close()


def config(kafka, tmp_path, topic: str, group: str, **changes) -> CollectorConfig:
    base = CollectorConfig(
        otlp_grpc_port=0,
        otlp_http_port=0,
        api_port=0,
        sqlite_path=tmp_path / "store.sqlite",
        kafka_ingest=kafka.bootstrap,
        kafka_group=group,
        kafka_topics=topic,
        kafka_session_s=6,
    )
    return base.replace(**changes)


def spans_ingested(service: CollectorService) -> int:
    return service.store.counters_snapshot()[0].get("kafka", 0)


def test_offsets_follow_persisted_buckets_and_a_graceful_stop_commits(kafka, tmp_path):
    topic, group = f"otlp_spans_{uuid.uuid4().hex[:8]}", f"cp-{uuid.uuid4().hex[:8]}"
    produce_spans(kafka.bootstrap, topic, "orders-svc", 30, headers=[("otelcol.signal", b"traces")])
    # a bucket longer than the test: nothing closes, so nothing may be committed while it runs
    service = CollectorService(config(kafka, tmp_path, topic, group, bucket_seconds=3600))
    service.start()
    try:
        assert wait_for(lambda: spans_ingested(service) >= 30 * SPANS_PER_RECORD, timeout_s=60), service.kafka_ingest.stats()
        assert spans_ingested(service) == 30 * SPANS_PER_RECORD
        assert {r["name"] for r in service.store.services(60)} == {"orders-svc"}
        service.maintain()
        assert committed(kafka.bootstrap, group, topic) < 0, "committed before any bucket was persisted"
        samples = metric_samples(service.api_url)
        assert samples[("chokepoint_kafka_ingest_records_total", (("topic", topic),))] == 30
        assert samples[("chokepoint_kafka_ingest_partitions", (("group", group),))] == 1
        assert samples[("chokepoint_kafka_ingest_uncommitted_records", (("partition", "0"), ("topic", topic)))] == 30
    finally:
        service.shutdown()
    assert committed(kafka.bootstrap, group, topic) == 30  # the open bucket was saved at close


def test_closed_buckets_commit_while_running_and_restart_drops_duplicates(kafka, tmp_path):
    topic, group = f"otlp_spans_{uuid.uuid4().hex[:8]}", f"cp-{uuid.uuid4().hex[:8]}"
    # topic name not one of the exporter's defaults: the signal comes from the header
    produce_spans(kafka.bootstrap, topic, "billing-svc", 10, headers=[("otelcol.signal", b"traces")])
    cfg = config(kafka, tmp_path, topic, group, bucket_seconds=1)
    service = CollectorService(cfg)
    service.start()
    try:
        assert wait_for(lambda: committed(kafka.bootstrap, group, topic) == 10, timeout_s=60), service.kafka_ingest.stats()
        assert spans_ingested(service) == 10 * SPANS_PER_RECORD
    finally:
        service.shutdown()
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        assert db.execute("SELECT next_offset FROM kafka_offsets WHERE grp=? AND topic=?", (group, topic)).fetchone() == (10,)
    # a crash between writing the buckets and committing to the group: the group is behind
    rewind = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False})
    rewind.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    rewind.close()
    produce_spans(kafka.bootstrap, topic, "billing-svc", 5, headers=[("otelcol.signal", b"traces")])
    again = CollectorService(cfg)
    again.start()
    try:
        assert wait_for(lambda: spans_ingested(again) >= 5 * SPANS_PER_RECORD, timeout_s=60), again.kafka_ingest.stats()
        assert wait_for(lambda: committed(kafka.bootstrap, group, topic) == 15, timeout_s=60)
        assert spans_ingested(again) == 5 * SPANS_PER_RECORD  # records 4..9 were not counted twice
        assert again.store.counters_snapshot()[3].get("duplicate") == 6 * SPANS_PER_RECORD
    finally:
        again.shutdown()


def test_bad_records_are_counted_and_committed(kafka, tmp_path):
    group = f"cp-{uuid.uuid4().hex[:8]}"
    topic = f"misc_{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(topic, value=b"\xff\xff not protobuf", headers=[("otelcol.signal", b"traces")])
    producer.produce(topic, value=b"no signal header, not a default topic")
    assert producer.flush(30) == 0
    produce_spans(kafka.bootstrap, topic, "x", 1, headers=[("otelcol.signal", b"traces")])
    service = CollectorService(config(kafka, tmp_path, topic, group, bucket_seconds=1))
    service.start()
    try:
        assert wait_for(lambda: committed(kafka.bootstrap, group, topic) == 3, timeout_s=60), service.kafka_ingest.stats()
        rejected = service.store.counters_snapshot()[2]
        assert rejected.get(("kafka", "malformed")) == 1
        assert rejected.get(("kafka", "unknown_signal")) == 1
        assert spans_ingested(service) == SPANS_PER_RECORD
    finally:
        service.shutdown()


def test_a_rebalance_hands_topics_over_without_loss_or_duplicates(kafka, tmp_path):
    """A second collector joins while records flow: topics move at a persisted bucket, counted once."""
    from confluent_kafka.admin import AdminClient, NewTopic

    uid = uuid.uuid4().hex[:8]
    topics = [f"rb-{uid}-{i}" for i in range(4)]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]).values():
        future.result(30)
    group = f"cp-{uid}"
    cfgs = [config(kafka, tmp_path / name, f"^rb-{uid}-.*", group, bucket_seconds=1) for name in ("a", "b")]
    first = CollectorService(cfgs[0])
    first.start()
    second = CollectorService(cfgs[1])
    sent = 0
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    try:
        for i in range(40):
            for t in topics:
                producer.produce(t, value=server_spans(t, "/orders", SPANS_PER_RECORD, first_trace_id=1 + sent), headers=[("otelcol.signal", b"traces")])
                sent += SPANS_PER_RECORD
            producer.flush(10)
            if i == 10:
                second.start()  # joins mid-stream: some topics move from the first
            time.sleep(0.1)
        assert wait_for(lambda: spans_ingested(first) + spans_ingested(second) >= sent, timeout_s=60), (first.kafka_ingest.stats(), second.kafka_ingest.stats())
        time.sleep(2)
        assert spans_ingested(first) + spans_ingested(second) == sent
        assert spans_ingested(second) > 0 and second.kafka_ingest.assigned(), second.kafka_ingest.stats()
        owners = [{r["name"] for r in s.store.services(600)} for s in (first, second)]
        assert owners[0] | owners[1] == set(topics)
    finally:
        second.shutdown()
        first.shutdown()
