"""Produce acknowledgement waits are the request's Kafka time (kafka_produce_wait + breakdown)."""

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind

from chokepoint.instrument import context
from chokepoint.instrument.breakdown import compute_breakdown
from chokepoint.instrument.kafka_produce_wait import KAFKA_WAIT, install_produce_wait
from tests.instrument.test_breakdown import MS, child, make_tracer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python reads its protocol schemas with a deprecated importlib API


def test_breakdown_adds_the_ack_wait_to_the_producer_spans():
    tracer, recorder = make_tracer()
    root = tracer.start_span("POST /orders", kind=SpanKind.SERVER, start_time=0)
    child(tracer, root, "orders send", 1, 2, kind=SpanKind.PRODUCER, **{"messaging.system": "kafka"})
    root.end(end_time=40 * MS)
    request = context.RequestContext(route="/orders", component_seconds={KAFKA_WAIT: 0.030})
    components = {k: round(v, 9) for k, v in compute_breakdown(root, recorder.spans[:-1], request).components.items()}
    assert components == {"kafka": 0.031, "self": 0.009}  # no separate "kafka_wait" component


class SlowAckProducer(AIOKafkaProducer):
    """aiokafka's producer with ``send`` answering from here: the ack arrives 30 ms later."""

    def __init__(self):  # no client: nothing here talks to a broker
        self.sent = []
        self._closed = True

    async def send(self, topic, value=None, **kwargs):
        self.sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.03, future.set_result, "metadata")
        return future


@pytest.fixture
def aiokafka_patched():
    undo = install_produce_wait("aiokafka")
    assert undo is not None and install_produce_wait("aiokafka") is None  # once
    yield
    undo()


def test_aiokafka_send_and_wait_reports_the_wait_inside_a_request(aiokafka_patched):
    async def main():
        producer = SlowAckProducer()
        token = context.start_request("/orders")
        try:
            assert await producer.send_and_wait("orders", value=b"1") == "metadata"
        finally:
            request = context.end_request(token)
        assert await producer.send_and_wait("orders", b"2") == "metadata"  # outside a request: nothing to record
        return producer, request

    producer, request = asyncio.run(main())
    assert producer.sent == [("orders", b"1"), ("orders", b"2")]
    assert set(request.component_seconds) == {KAFKA_WAIT}
    assert 0.025 <= request.component_seconds[KAFKA_WAIT] < 1.0


def test_kafka_python_future_get_is_timed_and_undo_restores():
    from kafka.producer.future import FutureRecordMetadata  # here: its import warns (filtered for this module's tests)

    original = FutureRecordMetadata.get
    undo = install_produce_wait("kafka")
    try:
        assert FutureRecordMetadata.get is not original
        assert install_produce_wait("kafka") is None
    finally:
        undo()
    assert FutureRecordMetadata.get is original
    assert install_produce_wait("nonexistent") is None


def test_confluent_flush_override_is_removed_on_undo():
    from opentelemetry.instrumentation.confluent_kafka import AutoInstrumentedProducer

    assert "flush" not in AutoInstrumentedProducer.__dict__
    undo = install_produce_wait("confluent_kafka")
    try:
        assert "flush" in AutoInstrumentedProducer.__dict__
    finally:
        undo()
    assert "flush" not in AutoInstrumentedProducer.__dict__
