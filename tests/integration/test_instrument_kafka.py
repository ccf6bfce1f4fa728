"""One trace across Kafka: an instrumented Flask app produces (confluent-kafka) to a real
broker, an instrumented consumer process consumes; both run under chokepoint-instrument.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests
from confluent_kafka.admin import AdminClient, NewTopic
from instrumented_app import BIN, InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

PRODUCER_APP = """
import os, sys
from confluent_kafka import Producer
from flask import Flask
from werkzeug.serving import make_server

app = Flask(__name__)
producer = Producer({"bootstrap.servers": os.environ["APP_KAFKA"]})
TOPIC = os.environ["APP_TOPIC"]

@app.get("/health")
def health():
    return {"ok": True}

@app.post("/orders/<int:order_id>")
def create(order_id):
    producer.produce(TOPIC, key=str(order_id), value=f"order-{order_id}")
    producer.flush(10)
    return {"queued": order_id}

if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""

CONSUMER = """
import os, sys, time
from confluent_kafka import Consumer

expected = int(sys.argv[1])
consumer = Consumer({"bootstrap.servers": os.environ["APP_KAFKA"], "group.id": os.environ["APP_GROUP"], "auto.offset.reset": "earliest"})
consumer.subscribe([os.environ["APP_TOPIC"]])
seen = 0
deadline = time.monotonic() + 90
while seen < expected and time.monotonic() < deadline:
    message = consumer.poll(1.0)
    if message is None or message.error():
        continue
    time.sleep(0.01)  # "processing"
    seen += 1
consumer.poll(0.2)  # ends the last process span
consumer.close()
print("consumed", seen)
"""

PRODUCER, CONSUMER_KIND = 4, 5


def test_produce_and_consume_share_one_trace(kafka, tmp_path):
    topic, group = f"orders-{uuid.uuid4().hex[:8]}", f"billing-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})  # keep a reference: the handle must outlive the future
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    base_env = {
        "APP_KAFKA": kafka.bootstrap,
        "APP_TOPIC": topic,
        "APP_GROUP": group,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
    }
    with OtlpSink() as sink:
        env = {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}
        (tmp_path / "producer").mkdir()
        with InstrumentedApp(PRODUCER_APP, tmp_path / "producer", {**env, "OTEL_SERVICE_NAME": "orders"}) as app:
            for order_id in range(3):
                assert requests.post(app.url(f"/orders/{order_id}"), timeout=30).status_code == 200
            # werkzeug dies on SIGTERM without running atexit: wait for its data before stopping it
            sink.wait_for(lambda s: len(s.spans(f"{topic} send")) == 3)
            sink.wait_for(lambda s: [p for p in s.points(signals.HTTP_SERVER_DURATION) if p.count == 3])
        consumer_script = tmp_path / "consumer.py"
        consumer_script.write_text(CONSUMER)
        done = subprocess.run(
            [str(BIN / "chokepoint-instrument"), sys.executable, str(consumer_script), "3"],
            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env, "OTEL_SERVICE_NAME": "billing"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "consumed 3" in done.stdout
        sink.wait_for(lambda s: len(s.spans(f"{topic} process")) == 3)
        sink.wait_for(lambda s: sum(p.count for p in s.points(signals.MESSAGING_PROCESS_DURATION)) == 3)

    producers = {s.span_id: s for s in sink.spans(f"{topic} send")}
    assert len(producers) == 3 and all(s.kind == PRODUCER and s.resource["service.name"] == "orders" for s in producers.values())
    servers = {s.span_id: s for s in sink.spans("POST /orders/<int:order_id>")}
    for consumed in sink.spans(f"{topic} process"):
        assert consumed.kind == CONSUMER_KIND and consumed.resource["service.name"] == "billing"
        produced = producers[consumed.parent_span_id]  # parent is the producer span, via the headers
        assert consumed.trace_id == produced.trace_id
        assert servers[produced.parent_span_id].trace_id == produced.trace_id  # ...which the HTTP request started
    (process,) = sink.points(signals.MESSAGING_PROCESS_DURATION)
    assert process.attributes == {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "process"}
    assert process.count == 3
    kafka_time = [p for p in sink.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["chokepoint.component"] == "kafka"]
    assert kafka_time and kafka_time[0].attributes["http.route"] == "/orders/<int:order_id>" and kafka_time[0].value > 0
