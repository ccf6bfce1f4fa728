"""kafka-python and aiokafka consumers: the work done on a record joins the producer's trace.

The upstream kafka-python and aiokafka instrumentors make a ``<topic> receive`` span
(parent: the producer span, from the record's headers) and close it before the record
reaches the app.  What the app then does with the record — its DB writes, HTTP calls —
ran outside any trace context: new, unrelated traces, and no
``messaging.process.duration``.  confluent-kafka has a ``<topic> process`` span for that
(:mod:`chokepoint.instrument.kafka_context` parents it); these two had none.

Usage (the ``chokepoint_kafka`` / ``chokepoint_aiokafka`` integrations call it after each
instrumentor, :mod:`chokepoint.instrument.integrations.kafka`)::

    undo = install_kafka_process_spans("kafka")      # kafka-python
    undo = install_kafka_process_spans("aiokafka")

When ``KafkaConsumer.__next__`` (``for record in consumer``) or ``AIOKafkaConsumer.getone``
(``async for``, ``await consumer.getone()``) hands a record to the app, a
``<topic> process`` CONSUMER span starts — parent: the producer's context from the
record's headers — and is current until the app asks for the next record, or closes the
consumer (``close()`` / ``stop()``), as confluent-kafka's process span.  Its attributes:
``messaging.system=kafka``, ``messaging.destination.name``, ``messaging.operation.type=process``,
``messaging.destination.partition.id``.  ``getmany()`` (a batch, no single parent) ends the
previous process span and starts none.  aiokafka: the span is current in the task that
awaited ``getone()``; awaited through ``asyncio.wait_for`` on Python < 3.12 (which runs it
in a task of its own) the process span is still made, but the app's work is not inside it.
Never raises into the app.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)
_MARK = "_chokepoint_kafka_process"
_STATE = "_chokepoint_process_span"  # (span, context token) on the consumer instance


def _tracer():
    from opentelemetry import trace

    return trace.get_tracer("chokepoint.instrument.kafka")


def _end(consumer) -> None:
    try:
        state = consumer.__dict__.pop(_STATE, None)
        if state is None:
            return
        span, token = state
        from opentelemetry import context

        with contextlib.suppress(ValueError):  # asked for the next record from another context
            context.detach(token)
        span.end()
    except Exception:
        _log.debug("chokepoint: ending a Kafka process span failed", exc_info=True)


def _start(consumer, record, getter, tracer=None) -> None:
    try:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind

        headers = getattr(record, "headers", None)
        parent = propagate.extract(headers, getter=getter) if headers else None
        topic = str(record.topic)
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
        }
        partition = getattr(record, "partition", None)
        if partition is not None:
            attributes["messaging.destination.partition.id"] = str(partition)
        span = (tracer or _tracer()).start_span(f"{topic} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
        token = context.attach(trace.set_span_in_context(span, parent))
        consumer.__dict__[_STATE] = (span, token)
    except Exception:
        _log.debug("chokepoint: starting a Kafka process span failed", exc_info=True)


def _replace(owner: type, name: str, make: Callable[[Callable], Callable], patched: list) -> None:
    original = getattr(owner, name, None)  # through the class: upstream's wrapt wrapper takes self as first argument
    if original is None or getattr(original, _MARK, False):
        return
    replacement = make(original)
    setattr(replacement, _MARK, True)
    raw = owner.__dict__.get(name)  # what undo puts back (None: inherited, the override is removed)
    setattr(owner, name, replacement)
    patched.append((owner, name, raw))


def _kafka_python(patched: list) -> None:
    import kafka

    from chokepoint.instrument.compat import kafka_headers_getter

    getter = kafka_headers_getter("kafka")

    def make_next(original):
        def __next__(self):
            _end(self)
            record = original(self)  # StopIteration (consumer_timeout_ms) passes through
            _start(self, record, getter)
            return record

        return __next__

    def make_close(original):
        def close(self, *args, **kwargs):
            _end(self)
            return original(self, *args, **kwargs)

        return close

    _replace(kafka.KafkaConsumer, "__next__", make_next, patched)
    _replace(kafka.KafkaConsumer, "close", make_close, patched)


def _aiokafka(patched: list) -> None:
    from aiokafka import AIOKafkaConsumer

    from chokepoint.instrument.compat import kafka_headers_getter

    getter = kafka_headers_getter("aiokafka")

    def make_getone(original):
        async def getone(self, *partitions):
            _end(self)
            record = await original(self, *partitions)
            _start(self, record, getter)
            return record

        return getone

    def make_ending(original):
        async def ending(self, *args, **kwargs):
            _end(self)
            return await original(self, *args, **kwargs)

        return ending

    _replace(AIOKafkaConsumer, "getone", make_getone, patched)
    _replace(AIOKafkaConsumer, "getmany", make_ending, patched)
    _replace(AIOKafkaConsumer, "stop", make_ending, patched)


_INSTALLERS = {"kafka": _kafka_python, "aiokafka": _aiokafka}


def install_kafka_process_spans(library: str) -> Callable[[], None] | None:
    """Process spans for ``library``'s consumers (module docstring); ``None`` if nothing was patched."""
    installer = _INSTALLERS.get(library)
    if installer is None:
        return None
    patched: list = []
    try:
        installer(patched)
    except (ImportError, AttributeError):
        _log.debug("chokepoint: %s process spans not installed (library missing or changed)", library, exc_info=True)
    if not patched:
        return None

    def undo() -> None:
        for owner, name, original in reversed(patched):
            if original is None:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)
            else:
                setattr(owner, name, original)

    return undo
