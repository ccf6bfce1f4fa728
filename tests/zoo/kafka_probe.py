"""The Kafka side of a zoo consumer app, in its own process (librdkafka stays out of the harness).

``python kafka_probe.py BOOTSTRAP TOPIC GROUP PREFILL RATE OUT``: creates ``TOPIC`` (2 partitions),
produces ``PREFILL`` messages, writes ``{"ready": true}`` to ``OUT``, then produces ``RATE`` messages a
second and appends the group's lag as Kafka itself sees it (high watermarks minus the group's
committed offsets, via an AdminClient) every half second: ``{"t": <CLOCK_MONOTONIC>, "lag": N}``.
"""

import json
import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 2


def lag(admin: AdminClient, watermarks: Consumer, topic: str, group: str) -> int:
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    try:
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])
        committed = {tp.partition: tp.offset for tp in next(iter(res.values())).result(10).topic_partitions}
    except Exception:  # the group has not joined yet: it has consumed nothing
        committed = {}
    total = 0
    for p in range(PARTITIONS):
        low, high = watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - (committed[p] if committed.get(p, -1) >= 0 else low)
    return total


def main(bootstrap: str, topic: str, group: str, prefill: int, rate: float, out: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(prefill):
        producer.produce(topic, json.dumps({"order": i}).encode())
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    watermarks = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-probe"})
    with open(out, "a") as f:
        f.write(json.dumps({"ready": True}) + "\n")
        f.flush()
        next_sample, i = time.monotonic(), prefill
        while True:
            producer.produce(topic, json.dumps({"order": i}).encode())
            producer.poll(0)
            i += 1
            if time.monotonic() >= next_sample:
                try:
                    f.write(json.dumps({"t": time.monotonic(), "lag": lag(admin, watermarks, topic, group)}) + "\n")
                    f.flush()
                except Exception as exc:  # the broker did not answer in time
                    f.write(json.dumps({"t": time.monotonic(), "error": str(exc)}) + "\n")
                    f.flush()
                next_sample += 0.5
            time.sleep(1.0 / rate)


if __name__ == "__main__":
    b, t, g, n, r, o = sys.argv[1:7]
    main(b, t, g, int(n), float(r), o)
