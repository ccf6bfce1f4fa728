"""Agent.shutdown() leaves no patch behind: every attribute the agent, its integrations, the
upstream instrumentors it ran, their fix-ups and the probes replaced is the original object again."""

from __future__ import annotations

import importlib
import os
import socket
import sqlite3

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument import agent as agent_module

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
    "socket:socket",
    "threading",
    "concurrent.futures:ThreadPoolExecutor",
)


DEFAULTS = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-length,content-encoding",
}


def places():
    for spec in PATCHED_PLACES:
        module_name, _, attribute = spec.partition(":")
        module = importlib.import_module(module_name)
        yield spec, getattr(module, attribute) if attribute else module


def snapshot() -> dict[tuple[str, str], object]:
    return {(spec, name): value for spec, owner in places() for name, value in list(vars(owner).items())}


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
    changed = {key for key, value in before.items() if during.get(key) is not value}
    # the integrations the plan chose, the upstream instrumentors and the probes did patch
    assert ("requests.sessions:Session", "send") in changed and ("urllib3.connectionpool:HTTPConnectionPool", "urlopen") in changed
    assert ("httpx:HTTPTransport", "handle_request") in changed and ("flask", "Flask") in changed
    with sqlite3.connect(":memory:") as conn:  # instrumented calls still work
        conn.execute("select 1")
    agent_module._reset_for_tests()
    after = snapshot()
    left = sorted(f"{spec}.{name}" for (spec, name), value in before.items() if after.get((spec, name)) is not value)
    assert left == []
    assert socket.socket.accept is before[("socket:socket", "accept")]
