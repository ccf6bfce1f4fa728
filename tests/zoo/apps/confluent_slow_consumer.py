"""A confluent-kafka consumer that does 20 ms of work per message; the topic gets more than it can take."""

import json
import os
import time

from confluent_kafka import Consumer

consumer = Consumer(
    {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"], "group.id": os.environ["KAFKA_GROUP"], "auto.offset.reset": "earliest", "enable.auto.commit": True}
)
consumer.subscribe([os.environ["KAFKA_TOPIC"]])


def handle(event: dict) -> None:
    time.sleep(0.02)  # write the order to the warehouse system


try:
    while True:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        handle(json.loads(msg.value()))
finally:
    consumer.close()
