"""kafka-python and aiokafka under ``chokepoint-instrument``: producer → real broker →
consumer in ONE trace (context in the message headers), over the real KRaft Kafka.

A FastAPI app (uvicorn, zero code change) produces from a route per library —
kafka-python from a sync endpoint, aiokafka from an async one — and a consumer process per
library, also under ``chokepoint-instrument`` (started with the app, so their start-ups
overlap), reads the records back by partition assignment.  Each test checks the consumer span's parent is the producer span, which the
HTTP request started; the consumer's work on each record (a sqlite3 write) inside a
``<topic> process`` span in the same trace; the messaging metrics' exact attributes; and the request's Kafka
time in the breakdown: the producer spans (the library's ``send()``) plus the wait for the
broker's acknowledgement (``send(...).get()``, ``send_and_wait()``), which upstream
leaves outside every span (:mod:`chokepoint.instrument.kafka_produce_wait`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests
from confluent_kafka.admin import AdminClient, NewTopic
from instrumented_app import BIN, InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import contextlib, os, sys
import kafka, uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

BOOT = os.environ["APP_KAFKA"]
producer = kafka.KafkaProducer(bootstrap_servers=BOOT)
aio = {}

@contextlib.asynccontextmanager
async def lifespan(app):
    aio["producer"] = AIOKafkaProducer(bootstrap_servers=BOOT)
    await aio["producer"].start()
    yield
    await aio["producer"].stop()

app = FastAPI(lifespan=lifespan)

@app.get("/health")
def health():
    return {"ok": True}

@app.post("/kafka-python/{order_id}")
def with_kafka_python(order_id: int):
    producer.send(os.environ["APP_TOPIC_KAFKA_PYTHON"], key=str(order_id).encode(), value=f"order-{order_id}".encode()).get(timeout=10)
    return {"queued": order_id}

@app.post("/aiokafka/{order_id}")
async def with_aiokafka(order_id: int):
    await aio["producer"].send_and_wait(os.environ["APP_TOPIC_AIOKAFKA"], key=str(order_id).encode(), value=f"order-{order_id}".encode())
    return {"queued": order_id}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

CONSUMER = """
import asyncio, os, sqlite3, sys
library, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
BOOT = os.environ["APP_KAFKA"]
seen = []
db = sqlite3.connect(f"{library}.db", isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS handled (value TEXT)")

def handle(record):  # the app's work on a record: it belongs to the producer's trace
    seen.append(record.value.decode())
    db.execute("INSERT INTO handled (value) VALUES (?)", (seen[-1],))

if library == "kafka-python":
    import kafka
    consumer = kafka.KafkaConsumer(bootstrap_servers=BOOT, auto_offset_reset="earliest", consumer_timeout_ms=90000)
    consumer.assign([kafka.TopicPartition(topic, 0)])
    for record in consumer:
        handle(record)
        if len(seen) == expected:
            break
    consumer.close()
else:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def main():
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOT, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        try:
            async for record in consumer:  # the test's communicate(timeout=...) bounds the wait
                handle(record)
                if len(seen) == expected:
                    break
        finally:
            await consumer.stop()

    asyncio.run(main())
print("consumed", " ".join(seen))
"""

SERVER, PRODUCER, CONSUMER_KIND = 2, 4, 5
ORDERS = (7, 8, 9)
TOPICS = {library: f"{library}-{uuid.uuid4().hex[:8]}" for library in ("kafka-python", "aiokafka")}


@pytest.fixture(scope="module")
def stack(kafka, tmp_path_factory):
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})  # keep a reference: the handle must outlive the futures
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1) for topic in TOPICS.values()]).values():
        future.result(timeout=30)
    workdir = tmp_path_factory.mktemp("kafka-clients")
    (workdir / "consumer.py").write_text(CONSUMER)
    with OtlpSink() as sink:
        env = {
            "APP_KAFKA": kafka.bootstrap,
            "APP_TOPIC_KAFKA_PYTHON": TOPICS["kafka-python"],
            "APP_TOPIC_AIOKAFKA": TOPICS["aiokafka"],
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
        }
        # the consumers start now and wait for their records: their start-up overlaps the app's
        consumers = {
            library: subprocess.Popen(
                [str(BIN / "chokepoint-instrument"), sys.executable, str(workdir / "consumer.py"), library, topic, str(len(ORDERS))],
                cwd=workdir,
                env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env, "OTEL_SERVICE_NAME": "billing"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for library, topic in TOPICS.items()
        }
        try:
            with InstrumentedApp(APP, workdir, {**env, "OTEL_SERVICE_NAME": "orders"}) as app:
                yield app, sink, consumers
        finally:
            for consumer in consumers.values():
                if consumer.poll() is None:
                    consumer.kill()
                consumer.communicate()
    assert sink.errors == []


def produce_and_consume(stack, library: str) -> tuple:
    app, sink, consumers = stack
    topic, route = TOPICS[library], f"/{library}/{{order_id}}"
    for order_id in ORDERS:
        assert requests.post(app.url(f"/{library}/{order_id}"), timeout=30).json() == {"queued": order_id}
    sink.wait_for(lambda s: len(s.spans(f"POST {route}")) == len(ORDERS) and len(s.spans(f"{topic} send")) == len(ORDERS))
    out, err = consumers[library].communicate(timeout=120)
    assert consumers[library].returncode == 0, err[-3000:]
    assert out.split() == ["consumed", *(f"order-{n}" for n in ORDERS)]
    sink.wait_for(lambda s: len(s.spans(f"{topic} receive")) == len(ORDERS) and len(s.spans(f"{topic} process")) == len(ORDERS))
    sink.wait_for(
        lambda s: [
            p for p in s.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["http.route"] == route and p.attributes["chokepoint.component"] == "kafka"
        ]
    )
    sink.wait_for(
        lambda s: [
            p
            for p in s.points(signals.MESSAGING_CLIENT_OPERATION_DURATION)
            if p.resource["service.name"] == "billing" and p.attributes["messaging.destination.name"] == topic
        ]
    )

    servers = {s.span_id: s for s in sink.spans(f"POST {route}")}
    producers = {s.span_id: s for s in sink.spans(f"{topic} send")}
    for produced in producers.values():
        assert produced.kind == PRODUCER and produced.resource["service.name"] == "orders"
        assert servers[produced.parent_span_id].trace_id == produced.trace_id  # the request's child
    receives = sink.spans(f"{topic} receive")
    for received in receives:
        assert received.kind == CONSUMER_KIND and received.resource["service.name"] == "billing"
        produced = producers[received.parent_span_id]  # parent: the producer span, through the headers
        assert received.trace_id == produced.trace_id
    assert len({r.trace_id for r in receives}) == len(ORDERS)  # one trace per order, end to end
    # the consumer's work on each record: a process span (chokepoint.instrument.kafka_process) under the
    # producer span, current while the app handled the record, so its DB write is in the same trace
    for processed in sink.spans(f"{topic} process"):
        assert processed.kind == CONSUMER_KIND and processed.trace_id == producers[processed.parent_span_id].trace_id
        assert processed.attributes == {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
            "messaging.destination.partition.id": "0",
        }
        (write,) = [s for s in sink.spans() if s.parent_span_id == processed.span_id]
        assert write.trace_id == processed.trace_id
        assert write.attributes == {"db.system.name": "sqlite", "db.query.text": "INSERT INTO handled (value) VALUES (?)"}
    assert len(sink.spans(f"{topic} process")) == len(ORDERS)

    def metric(name: str, service: str) -> list:
        return [p for p in sink.points(name) if p.resource["service.name"] == service and p.attributes.get("messaging.destination.name") == topic]

    (kafka_time,) = [
        p for p in sink.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["http.route"] == route and p.attributes["chokepoint.component"] == "kafka"
    ]
    # more than the producer spans alone: the acknowledgement wait counts as Kafka, not as the app's own time
    assert kafka_time.value > sum(p.duration_s for p in producers.values()) > 0
    return producers, receives, metric


def test_kafka_python_producer_to_consumer_in_one_trace(stack):
    producers, receives, metric = produce_and_consume(stack, "kafka-python")
    topic = TOPICS["kafka-python"]
    for produced in producers.values():
        assert produced.attributes["messaging.system"] == "kafka" and produced.attributes["messaging.destination"] == topic
    for received in receives:
        # messaging.operation.type / destination.name: chokepoint's consume hook (distro.kafka_python_receive)
        assert {k: received.attributes[k] for k in ("messaging.system", "messaging.operation.type", "messaging.destination.name")} == {
            "messaging.system": "kafka",
            "messaging.operation.type": "receive",
            "messaging.destination.name": topic,
        }
    (send,) = metric(signals.MESSAGING_CLIENT_OPERATION_DURATION, "orders")
    assert send.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "send"}
    assert send.count == len(ORDERS)
    (receive,) = metric(signals.MESSAGING_CLIENT_OPERATION_DURATION, "billing")
    assert receive.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "receive"}
    assert receive.count == len(ORDERS)
    (process,) = metric(signals.MESSAGING_PROCESS_DURATION, "billing")  # the process spans, not the receives
    assert process.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "process"}
    assert process.count == len(ORDERS)


def test_aiokafka_producer_to_consumer_in_one_trace(stack):
    producers, receives, metric = produce_and_consume(stack, "aiokafka")
    topic = TOPICS["aiokafka"]
    for produced in producers.values():
        assert {k: produced.attributes[k] for k in ("messaging.system", "messaging.destination.name", "messaging.operation.type")} == {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "publish",
        }
    assert sorted(r.attributes["messaging.kafka.message.offset"] for r in receives) == [0, 1, 2]
    (send,) = metric(signals.MESSAGING_CLIENT_OPERATION_DURATION, "orders")
    assert send.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "publish"}
    assert send.count == len(ORDERS)
    (receive,) = metric(signals.MESSAGING_CLIENT_OPERATION_DURATION, "billing")
    assert receive.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "receive"}
    assert receive.count == len(ORDERS)
    (process,) = metric(signals.MESSAGING_PROCESS_DURATION, "billing")
    assert process.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "process"}
    assert process.count == len(ORDERS)
