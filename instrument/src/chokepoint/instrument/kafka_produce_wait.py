"""Waiting for Kafka to acknowledge a produce counts as Kafka time in the request breakdown.

The upstream producer spans (kafka-python, aiokafka, confluent-kafka) cover the library's
``send()`` / ``produce()`` call: putting the record in the client's buffer, usually
microseconds.  A request that then waits for the broker — aiokafka
``send_and_wait()``, kafka-python ``send(...).get()``, confluent-kafka ``flush()`` — spent
that time in Kafka, but the breakdown put it under ``self`` (the app's own code), so a
slow broker looked like slow application code.

Usage (the Kafka integrations call it after each Kafka instrumentor,
:mod:`chokepoint.instrument.integrations.kafka`)::

    undo = install_produce_wait("aiokafka")   # or "kafka" (kafka-python), "confluent_kafka"

Each wait is timed and reported with
:func:`chokepoint.instrument.context.record_component_time` as ``kafka_wait``, which the
breakdown adds to the request's ``kafka`` component.  Outside a request nothing is
recorded; the waits themselves are unchanged (same arguments, results and exceptions).
If a library is missing or its API changed, nothing is patched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chokepoint.instrument import context
from chokepoint.instrument.breakdown import KAFKA_WAIT

_log = logging.getLogger(__name__)
_MARK = "_chokepoint_produce_wait"


def _patch(owner: type, name: str, make: Callable[[Callable], Callable]) -> Callable[[], None] | None:
    own = name in owner.__dict__
    original = getattr(owner, name, None)
    if original is None or getattr(original, _MARK, False):
        return None
    replacement = make(original)
    setattr(replacement, _MARK, True)
    setattr(owner, name, replacement)

    def undo() -> None:
        if owner.__dict__.get(name) is replacement:
            if own:
                setattr(owner, name, original)
            else:  # inherited (confluent-kafka's C method): drop the override
                delattr(owner, name)

    return undo


def _timed_sync(original: Callable) -> Callable:
    def wait(self, *args, **kwargs):
        if context.current() is None:
            return original(self, *args, **kwargs)
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            context.record_component_time(KAFKA_WAIT, time.perf_counter() - start)

    wait.__doc__ = original.__doc__
    return wait


def _aiokafka() -> Callable[[], None] | None:
    from aiokafka import AIOKafkaProducer

    def make(_original):
        async def send_and_wait(self, *args, **kwargs):
            """Publish a message to a topic and wait the result"""
            future = await self.send(*args, **kwargs)  # the (instrumented) send: the producer span
            if context.current() is None:
                return await future
            start = time.perf_counter()
            try:
                return await future
            finally:
                context.record_component_time(KAFKA_WAIT, time.perf_counter() - start)

        return send_and_wait

    return _patch(AIOKafkaProducer, "send_and_wait", make)


def _kafka_python() -> Callable[[], None] | None:
    from kafka.producer.future import FutureRecordMetadata

    return _patch(FutureRecordMetadata, "get", _timed_sync)


def _confluent_kafka() -> Callable[[], None] | None:
    from opentelemetry.instrumentation.confluent_kafka import AutoInstrumentedProducer

    return _patch(AutoInstrumentedProducer, "flush", _timed_sync)


_INSTALLERS = {"aiokafka": _aiokafka, "kafka": _kafka_python, "confluent_kafka": _confluent_kafka}


def install_produce_wait(library: str) -> Callable[[], None] | None:
    """Time ``library``'s produce waits (module docstring); ``None`` if nothing was patched."""
    installer = _INSTALLERS.get(library)
    if installer is None:
        return None
    try:
        return installer()
    except (ImportError, AttributeError):
        _log.debug("chokepoint: %s produce waits not timed (library missing or changed)", library, exc_info=True)
        return None
