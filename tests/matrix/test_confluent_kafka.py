"""confluent-kafka in the library matrix: the producer span under the request, the ack wait
in the breakdown's ``kafka`` time, and the consumer's process span in the producer's trace
(real Kafka broker)."""

import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.matrix.harness import PRODUCER, Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": os.environ["APP_KAFKA"]})
TOPIC = os.environ["APP_TOPIC"]
""",
    """
@app.get("/orders/{n}")
def create(n: int):
    producer.produce(TOPIC, key=str(n), value=f"order-{n}")
    producer.flush(10)
    return {"queued": n}
""",
)


@pytest.fixture(scope="module")
def stack(kafka, tmp_path_factory):
    installed("confluent-kafka")
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})  # the handle must outlive the futures
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=60)
    with Traced(APP, tmp_path_factory.mktemp("kafka"), {"APP_KAFKA": kafka.bootstrap, "APP_TOPIC": topic}) as traced:
        yield traced, topic, kafka


def test_producer_span_and_kafka_time(stack):
    traced, topic, kafka = stack
    expected = [{"name": f"{topic} send", "messaging.system": "kafka", "messaging.destination": topic, "messaging.operation": "publish"}]
    check_route(traced, "/orders/{n}", expected, component="kafka", kind=PRODUCER)
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = []
    try:
        for _ in range(120):
            message = consumer.poll(1.0)
            if message is not None and not message.error():
                seen.append(message.value().decode())
            if len(seen) == 3:
                break
    finally:
        consumer.close()
    assert seen == ["order-3", "order-4", "order-5"]  # the records the requests produced
