"""Agent.shutdown() leaves no patch behind: every attribute the agent, its integrations, the
upstream instrumentors it ran, their fix-ups and the probes replaced is the original object again."""

from __future__ import annotations

import importlib
import os
import socket
import sqlite3
import types

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument import agent as agent_module
from chokepoint.instrument.integrations import AiokafkaFixups, ConfluentKafkaFixups, KafkaPythonFixups, SqlalchemyDedupe, Sqlite3Fixups

PATCHED_PLACES = (  # modules and classes the agent's integrations, fix-ups and probes patch
    "requests.sessions:Session",
    "urllib3.connectionpool:HTTPConnectionPool",
    "httpx:HTTPTransport",
    "httpx:AsyncHTTPTransport",
    "httpx:Client",
    "httpx:AsyncClient",
    "fastapi:FastAPI",
    "starlette.applications:Starlette",
    "flask",
    "flask:Flask",
    "sqlalchemy",
    "sqlalchemy.engine:Engine",
    "sqlalchemy.engine.default:DefaultDialect",
    "psycopg",
    "psycopg2",
    "redis:Redis",
    "kafka:KafkaConsumer",
    "kafka:KafkaProducer",
    "aiokafka:AIOKafkaConsumer",
    "aiokafka:AIOKafkaProducer",
    "confluent_kafka",
    "django",
    "sqlite3",
    "opentelemetry.instrumentation.dbapi",
    "opentelemetry.instrumentation.confluent_kafka",
    "opentelemetry.instrumentation.confluent_kafka:AutoInstrumentedProducer",
    "kafka.producer.future:FutureRecordMetadata",
    "socket:socket",
    "threading",
    "concurrent.futures:ThreadPoolExecutor",
)


DEFAULTS = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-length,content-encoding",
}


MISSING = object()  # an attribute a patch added (an override of an inherited method)


def places():
    for spec in PATCHED_PLACES:
        module_name, _, attribute = spec.partition(":")
        module = importlib.import_module(module_name)
        yield spec, getattr(module, attribute) if attribute else module


def snapshot() -> dict[tuple[str, str], object]:
    """Every attribute of the patched places (submodules imported on the way are not patches)."""
    return {(spec, name): value for spec, owner in places() for name, value in list(vars(owner).items()) if not isinstance(value, types.ModuleType)}


def test_shutdown_reverts_every_patch(monkeypatch):
    for name in [k for k in os.environ if k.startswith(("CHOKEPOINT_", "OTEL_"))]:
        monkeypatch.delenv(name)
    for name, value in DEFAULTS.items():  # what instrument() sets: restored after the test
        monkeypatch.setenv(name, value)
    agent_module._reset_for_tests()
    before = snapshot()
    agent = agent_module.instrument(span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False)
    assert agent is not None and agent.plan.own("requests")
    during = snapshot()
    changed = {key for key in before.keys() | during.keys() if during.get(key, MISSING) is not before.get(key, MISSING)}
    # the integrations the plan chose, the upstream instrumentors and the probes did patch
    assert ("requests.sessions:Session", "send") in changed and ("urllib3.connectionpool:HTTPConnectionPool", "urlopen") in changed
    assert ("httpx:HTTPTransport", "handle_request") in changed and ("flask", "Flask") in changed
    # the fix-up integrations over the upstream instrumentors that run here (chokepoint.instrument.integrations;
    # an instrumentor whose declared range excludes the installed library is not loaded, nor its fix-up)
    fixups = {
        Sqlite3Fixups: {("opentelemetry.instrumentation.dbapi", "get_traced_connection_proxy")},
        SqlalchemyDedupe: {("sqlalchemy.engine.default:DefaultDialect", "connect")},
        ConfluentKafkaFixups: {
            ("opentelemetry.instrumentation.confluent_kafka", "_create_new_consume_span"),
            ("opentelemetry.instrumentation.confluent_kafka:AutoInstrumentedProducer", "flush"),
        },
        KafkaPythonFixups: {("kafka.producer.future:FutureRecordMetadata", "get"), ("kafka:KafkaConsumer", "__next__")},
        AiokafkaFixups: {("aiokafka:AIOKafkaProducer", "send_and_wait"), ("aiokafka:AIOKafkaConsumer", "getone")},
    }
    active = [fixup for fixup in fixups if agent.plan.fixes(fixup.library) and fixup().upstream_active()]
    assert {Sqlite3Fixups, SqlalchemyDedupe} <= set(active)
    for fixup in active:
        assert fixup().installed and fixups[fixup] <= changed, (fixup, fixups[fixup] - changed)
    with sqlite3.connect(":memory:") as conn:  # instrumented calls still work
        conn.execute("select 1")
    agent_module._reset_for_tests()
    after = snapshot()
    left = sorted(f"{spec}.{name}" for spec, name in before.keys() | after.keys() if after.get((spec, name), MISSING) is not before.get((spec, name), MISSING))
    assert left == []
    assert socket.socket.accept is before[("socket:socket", "accept")]
