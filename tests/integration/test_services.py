"""Smoke tests: every real service the suite relies on is really there and reachable."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
import uuid

import psycopg
import pymysql
import redis as redis_client
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from devservices import LOWEST_PORT, PrometheusService, chromium_screenshot, ephemeral_port_range, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low, _ = ephemeral_port_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST_PORT <= port < low for port in ports), (low, ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_postgres_round_trip(postgres):
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("CREATE TABLE smoke (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO smoke (name) VALUES (%s), (%s)", ("a", "b"))
        rows = conn.execute("SELECT name FROM smoke ORDER BY id").fetchall()
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert rows == [("a",), ("b",)]
    assert int(version.split(".")[0]) >= 13


def test_kafka_produce_consume_commit(kafka):
    topic, group = f"smoke-{uuid.uuid4().hex[:8]}", f"smoke-group-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)

    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for i in range(5):
        producer.produce(topic, key=str(i), value=f"message-{i}")
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + 60
    while len(values) < 5 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        values.append(msg.value().decode())
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    consumer.close()

    assert values == [f"message-{i}" for i in range(5)]
    assert committed[0].offset == 5


def test_redis_round_trip(redis):
    client = redis_client.Redis.from_url(redis.url)
    unix = redis_client.Redis(unix_socket_path=str(redis.socket_path))
    try:
        key = f"smoke:{uuid.uuid4().hex[:8]}"
        assert client.set(key, "v", ex=60) is True
        assert unix.get(key) == b"v"  # same server over its unix socket
        assert client.incrby(f"{key}:n", 5) == 5
        assert int(client.info("server")["redis_version"].split(".")[0]) >= 6
    finally:
        client.close()
        unix.close()


def test_mariadb_round_trip(mariadb):
    conn = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, database=mariadb.database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE smoke (id int AUTO_INCREMENT PRIMARY KEY, name varchar(20) NOT NULL) ENGINE=InnoDB")
            cur.executemany("INSERT INTO smoke (name) VALUES (%s)", [("a",), ("b",)])
            cur.execute("SELECT name FROM smoke ORDER BY id")
            rows = cur.fetchall()
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    assert rows == (("a",), ("b",))
    assert "MariaDB" in version


def test_prometheus_scrapes_client_endpoint():
    registry = CollectorRegistry()
    gauge = Gauge("chokepoint_smoke_value", "smoke-test gauge", registry=registry)
    gauge.set(42.5)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusService([f"127.0.0.1:{port}"]) as prom:
            value = None
            deadline = time.monotonic() + 30
            while value is None and time.monotonic() < deadline:
                query = urllib.parse.urlencode({"query": "chokepoint_smoke_value"})
                with urllib.request.urlopen(f"{prom.url}/api/v1/query?{query}", timeout=5) as resp:
                    result = json.load(resp)["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                else:
                    time.sleep(0.5)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert value == 42.5


def test_chromium_renders_local_page(chromium, artifacts_dir, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body style='margin:0;background:#fff'><div style='width:400px;height:300px;background:#d62728'></div></body></html>")
    png = chromium_screenshot(page.as_uri(), artifacts_dir / "smoke-chromium.png", size=(800, 600), budget_ms=2000)
    with Image.open(png) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (800, 600)
        assert rgb.getpixel((100, 100)) == (214, 39, 40)
        assert rgb.getpixel((700, 500)) == (255, 255, 255)
