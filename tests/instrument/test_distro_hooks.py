"""chokepoint's hooks on upstream instrumentors: urllib3 spans name their host, kafka-python
consumer spans are receives (Django's response sizes: tests/integration/test_instrument_django.py)."""

from types import SimpleNamespace

import urllib3
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument.distro import django_response_size, instrumentor_options, kafka_python_receive, urllib3_server_address
from tests.integration.instrumented_app import Downstream


def test_urllib3_spans_name_their_host():
    options = instrumentor_options("urllib3", {})
    assert options["request_hook"] is urllib3_server_address
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = URLLib3Instrumentor()
    instrumentor.instrument(tracer_provider=provider, **options)
    try:
        with Downstream() as downstream:
            assert urllib3.PoolManager().request("GET", f"{downstream.url}/stock?x=1", timeout=5).status == 200
    finally:
        instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == downstream.port


def test_kafka_python_consumer_spans_are_receives():
    assert instrumentor_options("kafka", {})["consume_hook"] is kafka_python_receive
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("orders receive") as span:
        kafka_python_receive(span, SimpleNamespace(topic="orders", partition=0), (), {})
    (finished,) = exporter.get_finished_spans()
    assert dict(finished.attributes) == {"messaging.operation.type": "receive", "messaging.destination.name": "orders"}


def test_hooks_never_raise():
    class Broken:
        def is_recording(self):
            raise RuntimeError("broken span")

    urllib3_server_address(Broken(), object())  # logged, not raised
    kafka_python_receive(Broken(), object(), (), {})
    django_response_size(Broken(), object(), object())


def test_a_failing_fix_never_stops_the_other_instrumentors(monkeypatch, caplog):
    import chokepoint.instrument.distro as distro
    from chokepoint.instrument.integrations import Sqlite3Fixups

    def broken(self, run_upstream):
        yield None
        raise RuntimeError("fix bug")

    monkeypatch.setattr(Sqlite3Fixups, "fix", broken)
    calls = []

    class EntryPoint:
        name = "sqlite3"

        def load(self):
            class Instrumentor:
                def instrument(self, **kwargs):
                    calls.append(kwargs)

                def uninstrument(self):
                    calls.append("uninstrument")

            return Instrumentor

    loader = distro.ChokepointDistro()
    loader.take_undo()  # what earlier loads left
    loader.load_instrumentor(EntryPoint(), skip_dep_check=True)  # logged, not raised
    assert len(calls) == 1 and "completing the sqlite3 instrumentation failed" in caplog.text
    for undo in reversed(loader.take_undo()):
        undo()
    assert calls[-1] == "uninstrument" and not Sqlite3Fixups().is_instrumented_by_opentelemetry
