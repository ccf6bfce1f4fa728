"""Producer → broker → consumer in one trace for confluent-kafka.

The upstream confluent-kafka instrumentor injects the trace context into message
headers on produce, but on the consumer side it starts the ``<topic> process`` span in a
*new* trace and only *links* it to the producer's span.  chokepoint wants the request
that produced a message and the work that consumed it in one trace (same trace id,
producer span as parent), as the kafka-python and aiokafka instrumentors already do.

Usage (the ``chokepoint_confluent_kafka`` integration calls it after the confluent-kafka
instrumentor, :mod:`chokepoint.instrument.integrations.kafka`)::

    undo = install_confluent_kafka_parenting()

It replaces the instrumentor's ``_create_new_consume_span`` helper with one that passes
the context extracted from the record's headers as the span's parent (keeping the links).
With several records (``consume(num_messages=...)``) there is no single parent: links only,
as upstream.  If the instrumentor is not installed or its internals changed, nothing is
patched and a debug line says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)


def install_confluent_kafka_parenting() -> Callable[[], None] | None:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    from chokepoint.instrument.compat import confluent_kafka_consume_span, set_confluent_consume_span, set_current_consume_span

    found = confluent_kafka_consume_span()
    if found is None:
        _log.debug("chokepoint: no confluent-kafka instrumentation with a known consume-span factory; consumer spans stay linked only")
        return None
    module, original, getter, links_of = found

    def create_consume_span(instance, tracer, records):
        parent = None
        if len(records) == 1:
            try:
                headers = records[0].headers()
                parent = propagate.extract(headers, getter=getter) if headers else None
            except Exception:
                parent = None
        span = tracer.start_span(name=f"{records[0].topic()} process", context=parent, links=links_of(records), kind=SpanKind.CONSUMER)
        set_current_consume_span(instance, span)

    set_confluent_consume_span(module, create_consume_span)

    def undo() -> None:
        set_confluent_consume_span(module, original)

    return undo
