"""Helpers shared by the agent's integration tests (FastAPI, Flask, Kafka probes).

seed_table(postgres, "items")            # table of 100 rows (id, 'item-<id>'), recreated
point(sink, metric, **attributes)        # the one OTLP point with exactly these attributes
topic, produce = kafka_topic(kafka, "orders")   # fresh single-partition topic; produce(n) flushes
"""

from __future__ import annotations

import uuid

import psycopg


def seed_table(postgres, table: str, prefix: str | None = None):
    """(Re)create ``table`` (``id int PRIMARY KEY, name text``) with ids 0–99; returns ``postgres``."""
    prefix = prefix or table.rstrip("s")
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute(f"INSERT INTO {table} SELECT g, '{prefix}-' || g FROM generate_series(0, 99) g")
    return postgres


def point(sink, metric: str, **attributes):
    """The point of ``metric`` whose attributes are exactly ``attributes`` (``None`` if absent)."""
    matches = [p for p in sink.points(metric) if p.attributes == attributes]
    assert len(matches) <= 1, f"{len(matches)} points of {metric} with {attributes}"
    return matches[0] if matches else None


def kafka_topic(kafka, prefix: str, value_prefix: str | None = None):
    """A new one-partition topic ``<prefix>-<random>`` and ``produce(n)``, which sends n
    records (``<value_prefix>-<i>``) and waits until the broker has them."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap})
    value_prefix = value_prefix or prefix.rstrip("s")

    def produce(n: int) -> None:
        for i in range(n):
            producer.produce(topic, value=f"{value_prefix}-{i}".encode())
        assert producer.flush(30) == 0

    return topic, produce
