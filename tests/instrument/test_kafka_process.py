"""kafka-python / aiokafka process spans: in the producer's trace, current while the app handles a record."""

from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chokepoint.instrument.kafka_process import _end, _start, install_kafka_process_spans

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python's schema loading


def kafka_getter():
    from opentelemetry.instrumentation.kafka.utils import _kafka_getter  # imports kafka-python: warnings filtered in tests only

    return _kafka_getter


TRACE_ID, PRODUCER_SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


def test_process_span_is_the_producers_child_and_current_until_the_next_record():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    consumer = SimpleNamespace()
    headers = [("traceparent", f"00-{TRACE_ID:032x}-{PRODUCER_SPAN_ID:016x}-01".encode())]
    record = SimpleNamespace(topic="orders", partition=2, headers=headers)

    _start(consumer, record, kafka_getter(), tracer)
    current = trace.get_current_span()
    with tracer.start_as_current_span("INSERT") as work:  # the app's work on the record
        pass
    _end(consumer)
    _end(consumer)  # nothing open: a no-op

    assert trace.get_current_span() is not current  # the context is restored
    process, inserted = sorted(exporter.get_finished_spans(), key=lambda s: s.name != "orders process")
    assert process.kind is SpanKind.CONSUMER and process.context.trace_id == TRACE_ID and process.parent.span_id == PRODUCER_SPAN_ID
    assert dict(process.attributes) == {
        "messaging.system": "kafka",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "process",
        "messaging.destination.partition.id": "2",
    }
    assert current.get_span_context() == process.context
    assert inserted.parent.span_id == process.context.span_id and work.get_span_context().trace_id == TRACE_ID


def test_a_record_without_headers_starts_a_trace_and_bad_records_never_raise():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    consumer = SimpleNamespace()
    _start(consumer, SimpleNamespace(topic="orders", partition=None, headers=[]), kafka_getter(), provider.get_tracer("t"))
    _end(consumer)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and "messaging.destination.partition.id" not in span.attributes
    _start(consumer, object(), kafka_getter(), provider.get_tracer("t"))  # no topic: logged, nothing started
    assert vars(consumer) == {}


@pytest.mark.parametrize("library", ["kafka", "aiokafka"])
def test_install_once_and_undo_restores(library):
    if library == "kafka":
        from kafka import KafkaConsumer as consumer_class

        names = ("__next__", "close")
    else:
        from aiokafka import AIOKafkaConsumer as consumer_class

        names = ("getone", "getmany", "stop")
    before = {name: consumer_class.__dict__.get(name) for name in names}
    undo = install_kafka_process_spans(library)
    try:
        assert undo is not None and install_kafka_process_spans(library) is None
        assert all(consumer_class.__dict__.get(name) is not before[name] for name in names)
    finally:
        undo()
    assert {name: consumer_class.__dict__.get(name) for name in names} == before
    assert install_kafka_process_spans("confluent_kafka") is None
