"""The coverage check (chokepoint.instrument.coverage): a library in use whose integration
produced nothing is reported as a blind spot, once in the log and as a gauge every collection.

A real agent with its real probes; SQLAlchemy on a SQLite file (a real QueuePool).  No
library instrumentor is loaded (``instrument(libraries=False)``), so SQLAlchemy's statement
path produces nothing unless a test makes the statement spans itself.
"""

from __future__ import annotations

import logging
import socket
import threading
from importlib import metadata

import pytest
import sqlalchemy
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text

from chokepoint.instrument import signals
from chokepoint.instrument.agent import Agent
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.coverage import MIN_USES, Check, Coverage


@pytest.fixture
def agent():
    agent = Agent(AgentConfig(trace_sample_rate=0.0), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader())
    agent.install_extras()
    yield agent
    agent.shutdown()


def coverage_points(agent) -> dict[tuple[str, str], dict]:
    """{(library, what): attributes + value} from one collection."""
    out = {}
    data = agent.metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == signals.AGENT_COVERAGE:
                    for point in metric.data.data_points:
                        a = point.attributes
                        out[(a[signals.ATTR_COVERAGE_LIBRARY], a[signals.ATTR_COVERAGE_WHAT])] = {**a, "value": point.value}
    return out


def run_statements(agent, tmp_path, n: int, spans: bool) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/shop.sqlite")
    tracer = agent.tracer_provider.get_tracer("test")
    for _ in range(n):
        with engine.connect() as connection:
            if spans:  # what a working statement integration makes
                with tracer.start_as_current_span("SELECT shop", kind=SpanKind.CLIENT, attributes={"db.system.name": "sqlite", "db.query.text": "SELECT 1"}):
                    connection.execute(text("SELECT 1"))
            else:
                connection.execute(text("SELECT 1"))
    engine.dispose()


def blind_spot_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "blind spot" in r.getMessage()]


def test_statements_without_statement_spans_are_a_blind_spot_logged_once(agent, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="chokepoint.instrument")
    run_statements(agent, tmp_path, MIN_USES + 2, spans=False)
    first = coverage_points(agent)
    second = coverage_points(agent)  # reported every collection...
    assert first == second
    spot = first[("SQLAlchemy", "statement spans")]
    assert spot["value"] == 0
    assert spot[signals.ATTR_COVERAGE_VERSION] == sqlalchemy.__version__
    assert spot[signals.ATTR_COVERAGE_TRY] == "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"
    assert ("SQLAlchemy", "pool metrics") not in first  # no statement seen: nothing to say about the pool metrics
    warnings = blind_spot_warnings(caplog)  # ...and logged once
    assert len(warnings) == 1
    assert f"SQLAlchemy {sqlalchemy.__version__}" in warnings[0] and "statement spans" in warnings[0] and "CHOKEPOINT_SQLALCHEMY_SPANS=listeners" in warnings[0]


def test_statements_with_statement_spans_are_seen(agent, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="chokepoint.instrument")
    run_statements(agent, tmp_path, MIN_USES + 2, spans=True)
    points = coverage_points(agent)
    assert points[("SQLAlchemy", "statement spans")]["value"] == 1
    assert points[("SQLAlchemy", "pool metrics")]["value"] == 1  # the pool probe found the engine's pool
    assert blind_spot_warnings(caplog) == []


def test_statements_with_no_pool_seen_are_a_pool_blind_spot_while_an_engine_exists(tmp_path):
    agent = Agent(
        AgentConfig(trace_sample_rate=0.0, probes=frozenset({"runtime"})),  # sqlalchemy_pool switched off
        span_exporter=InMemorySpanExporter(),
        metric_reader=InMemoryMetricReader(),
    )
    agent.install_extras()
    try:
        engine = create_engine(f"sqlite:///{tmp_path}/kept.sqlite")
        run_statements(agent, tmp_path, MIN_USES, spans=True)
        spot = coverage_points(agent)[("SQLAlchemy", "pool metrics")]
        assert spot["value"] == 0 and "sqlalchemy_pool" in spot[signals.ATTR_COVERAGE_TRY]
        assert ("SQLAlchemy", "statement spans") not in coverage_points(agent)  # its evidence is the probe's
        engine.dispose()
    finally:
        agent.shutdown()


def test_too_little_use_says_nothing(agent, tmp_path):
    run_statements(agent, tmp_path, MIN_USES - 1, spans=False)
    assert ("SQLAlchemy", "statement spans") not in coverage_points(agent)


def test_shutdown_stops_the_gauge(tmp_path):
    agent = Agent(AgentConfig(trace_sample_rate=0.0), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader())
    agent.install_extras()
    coverage = agent.coverage
    run_statements(agent, tmp_path, MIN_USES + 1, spans=False)
    assert [value for _check, value in coverage.evaluate()] == [0]
    agent.shutdown()
    assert coverage.observe() == []


def test_connections_accepted_without_server_spans_are_a_blind_spot_one_collection_later(agent):
    import uvicorn  # the server that accepts (imported: the check names it)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def serve():
            for _ in range(MIN_USES):
                server.accept()[0].close()

        thread = threading.Thread(target=serve)
        thread.start()
        for _ in range(MIN_USES):
            socket.create_connection(server.getsockname()).close()
        thread.join(10)
    assert ("uvicorn", "server spans") not in coverage_points(agent)  # a request may still be running
    spot = coverage_points(agent)[("uvicorn", "server spans")]
    assert (spot["value"], spot[signals.ATTR_COVERAGE_VERSION]) == (0, uvicorn.__version__)


def test_kafka_consumed_without_lag_is_a_blind_spot(agent):
    import confluent_kafka  # noqa: F401 - imported: the check runs (a consumer made before the agent started is not tracked)

    tracer = agent.tracer_provider.get_tracer("test")
    attributes = {"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation.type": "process"}
    for _ in range(MIN_USES):
        with tracer.start_as_current_span("orders process", kind=SpanKind.CONSUMER, attributes=attributes):
            pass
    assert ("confluent-kafka", "consumer lag") not in coverage_points(agent)  # judged one collection later
    spot = coverage_points(agent)[("confluent-kafka", "consumer lag")]
    assert (spot["value"], spot[signals.ATTR_COVERAGE_VERSION]) == (0, metadata.version("confluent-kafka"))
    assert "confluent_kafka" in spot[signals.ATTR_COVERAGE_TRY]


def test_a_check_with_grace_judges_the_use_seen_one_collection_earlier():
    used, produced = [0], [0]
    check = Check("Flask", "logging", "server spans", lambda: "try", used=lambda: used[0], produced=lambda: produced[0], grace=True)
    used[0] = MIN_USES  # connections accepted, their requests may not have ended yet
    assert check.verdict() is None
    assert check.verdict() == (0, MIN_USES)  # still nothing one collection later: a blind spot
    produced[0] = 3
    assert check.verdict() == (1, MIN_USES)


def test_a_failing_check_is_skipped():
    def broken():
        raise RuntimeError("probe state changed shape")

    good = Check("SQLAlchemy", "logging", "statement spans", lambda: "try", used=lambda: MIN_USES, produced=lambda: 1)
    coverage = Coverage([Check("X", "logging", "spans", lambda: "try", used=broken, produced=broken), good])
    assert [(check.library, value) for check, value in coverage.evaluate()] == [("SQLAlchemy", 1)]


def test_the_engine_scan_survives_lazy_objects_that_raise_when_asked_their_class(tmp_path):
    """A lazy proxy (Django's unconfigured settings) raises when asked for ``__class__``."""
    from chokepoint.instrument.coverage import EnginesExist

    class Unconfigured:
        @property
        def __class__(self):
            raise RuntimeError("settings are not configured")

    proxy = Unconfigured()
    engine = create_engine(f"sqlite:///{tmp_path / 'scan.db'}")
    try:
        assert EnginesExist()() is True
    finally:
        engine.dispose()
        del proxy
