"""Kafka clients: consumers' work in the producer's trace and produce waits as Kafka time,
after each upstream instrumentor.

- confluent-kafka (plan row ``confluent_kafka``, entry point ``chokepoint_confluent_kafka``):
  the upstream ``<topic> process`` span takes the producer's context from the record's
  headers as its parent (:mod:`chokepoint.instrument.kafka_context`); ``Producer.flush()``
  is Kafka time.
- kafka-python (row ``kafka``, ``chokepoint_kafka``) and aiokafka (row ``aiokafka``,
  ``chokepoint_aiokafka``): a ``<topic> process`` span is current while the app handles
  each record (:mod:`chokepoint.instrument.kafka_process`); ``send().get()`` /
  ``send_and_wait()`` is Kafka time.

Produce waits: :mod:`chokepoint.instrument.kafka_produce_wait`.
"""

from __future__ import annotations

from chokepoint.instrument.integrations.fixup import Fixup


class ConfluentKafkaFixups(Fixup):
    library = "confluent_kafka"
    upstream = "opentelemetry.instrumentation.confluent_kafka:ConfluentKafkaInstrumentor"

    def fix(self, run_upstream):
        from chokepoint.instrument.kafka_context import install_confluent_kafka_parenting
        from chokepoint.instrument.kafka_produce_wait import install_produce_wait

        yield install_produce_wait(self.library)
        yield install_confluent_kafka_parenting()


def _process_fixes(library: str):
    from chokepoint.instrument.kafka_process import install_kafka_process_spans
    from chokepoint.instrument.kafka_produce_wait import install_produce_wait

    yield install_produce_wait(library)
    yield install_kafka_process_spans(library)


class KafkaPythonFixups(Fixup):
    library = "kafka"
    upstream = "opentelemetry.instrumentation.kafka:KafkaInstrumentor"

    def fix(self, run_upstream):
        return _process_fixes(self.library)


class AiokafkaFixups(Fixup):  # not a subclass of KafkaPythonFixups: each BaseInstrumentor class is its own singleton
    library = "aiokafka"
    upstream = "opentelemetry.instrumentation.aiokafka:AIOKafkaInstrumentor"

    def fix(self, run_upstream):
        return _process_fixes(self.library)
