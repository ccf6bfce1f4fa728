"""Order events on Kafka: the topic, the producer the shop uses and the message format.

The shop publishes one ``order-paid`` event per paid order to topic ``orders``
(``SHOP_KAFKA_TOPIC`` overrides it); ``shop.fulfilment`` consumes it as group
``fulfilment``.  The value is JSON ``{"type": "order-paid", "order_id": 42,
"total_cents": 1234, "published_at": 1763769600.0}``, the key the order id (ordering per order).

The producer is idempotent (``enable.idempotence=true``, ``acks=all``); delivery
failures and a full local queue are counted (``delivery_errors``, ``dropped``), never
raised into the request.

Without Kafka (``--kafka none`` or empty: :func:`kafka_enabled`, the demo's fallback where
Java is not installed) the shop uses :class:`NoEvents` instead: nothing is published, the
events that would have been are counted as ``not_published``, and there is no
fulfilment worker (orders stay ``paid``).
"""

from __future__ import annotations

import json
import threading
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TOPIC = "orders"
FULFILMENT_GROUP = "fulfilment"
EVENT_ORDER_PAID = "order-paid"
#: ``--kafka`` values that mean "run without Kafka".
NO_KAFKA = ("", "none", "off")


def kafka_enabled(bootstrap: str | None) -> bool:
    """False for ``None``, ``""``, ``"none"`` or ``"off"`` (any case): the shop then runs without Kafka."""
    return bootstrap is not None and bootstrap.strip().lower() not in NO_KAFKA


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3, timeout_s: float = 30.0) -> None:
    """Create ``topic`` if it does not exist yet (idempotent)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout_s).topics
    if topic in existing:
        return
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args and getattr(exc.args[0], "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
            return
        raise


def encode_order_paid(order_id: int, total_cents: int) -> bytes:
    return json.dumps({"type": EVENT_ORDER_PAID, "order_id": order_id, "total_cents": total_cents, "published_at": time.time()}).encode()


def decode_event(value: bytes | None) -> dict:
    """Parse one message value; raises ``ValueError`` with the reason for anything malformed."""
    if value is None:
        raise ValueError("empty message")
    try:
        event = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(event, dict) or event.get("type") != EVENT_ORDER_PAID or not isinstance(event.get("order_id"), int):
        raise ValueError(f"not an {EVENT_ORDER_PAID} event: {str(event)[:100]}")
    return event


class OrderEvents:
    """Publishes order events; thread-safe (confluent-kafka's Producer is)."""

    def __init__(self, bootstrap: str, topic: str = DEFAULT_TOPIC) -> None:
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "client.id": "shop"})
        self._lock = threading.Lock()
        self.published = 0
        self.delivered = 0
        self.delivery_errors = 0
        self.dropped = 0

    def _on_delivery(self, err, msg) -> None:
        with self._lock:
            if err is not None:
                self.delivery_errors += 1
            else:
                self.delivered += 1

    def order_paid(self, order_id: int, total_cents: int) -> bool:
        """Queue an ``order-paid`` event; False (and counted) when the local queue is full."""
        try:
            self.producer.produce(self.topic, key=str(order_id), value=encode_order_paid(order_id, total_cents), on_delivery=self._on_delivery)
        except BufferError:
            with self._lock:
                self.dropped += 1
            return False
        self.producer.poll(0)
        with self._lock:
            self.published += 1
        return True

    def stats(self) -> dict:
        with self._lock:
            return {"kafka": True, "published": self.published, "delivered": self.delivered, "delivery_errors": self.delivery_errors, "dropped": self.dropped}

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush; returns the number of messages still undelivered."""
        return self.producer.flush(timeout_s)


class NoEvents:
    """The shop's order events when it runs without Kafka: counted, never published."""

    topic = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.not_published = 0

    def order_paid(self, order_id: int, total_cents: int) -> bool:
        """Count the event that would have been published; always False (nothing was)."""
        with self._lock:
            self.not_published += 1
        return False

    def stats(self) -> dict:
        with self._lock:
            return {"kafka": False, "published": 0, "delivered": 0, "delivery_errors": 0, "dropped": 0, "not_published": self.not_published}

    def close(self, timeout_s: float = 10.0) -> int:
        return 0
