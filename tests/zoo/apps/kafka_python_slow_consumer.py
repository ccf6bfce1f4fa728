"""A kafka-python consumer doing 20 ms of work per message; the producer is faster."""

import json
import os
import time

from kafka import KafkaConsumer

consumer = KafkaConsumer(
    os.environ["KAFKA_TOPIC"], bootstrap_servers=os.environ["KAFKA_BOOTSTRAP"], group_id=os.environ["KAFKA_GROUP"], auto_offset_reset="earliest"
)
for msg in consumer:
    event = json.loads(msg.value)
    time.sleep(0.02)  # resize the uploaded image
