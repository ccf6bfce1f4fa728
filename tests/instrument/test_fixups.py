"""The fix-up integrations: the plan gives each to its upstream instrumentor, the distro runs it
right after that instrumentor, and each is switched off by its own entry-point name."""

from __future__ import annotations

import sqlite3
from importlib.metadata import entry_points

from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.distro import ChokepointDistro
from chokepoint.instrument.integrations import FIXUPS, DjangoFixups, Sqlite3Fixups, fixups_for
from chokepoint.instrument.plan import BY_NAME, LIBRARIES, OWN, UPSTREAM, make_plan

EVERY_UPSTREAM = frozenset(row.name for row in LIBRARIES)
FIXED = ("django", "sqlite3", "sqlalchemy", "confluent_kafka", "kafka", "aiokafka")


def test_every_fixup_is_a_plan_row_and_an_entry_point():
    registered = {ep.name: ep.value for ep in entry_points(group="opentelemetry_instrumentor")}
    assert {row.name for row in LIBRARIES if row.fixup} == {fixup.library for fixup in FIXUPS} == set(FIXED)
    for fixup in FIXUPS:
        name = f"chokepoint_{BY_NAME[fixup.library].fixup}"
        assert registered[name] == f"{fixup.__module__}:{fixup.__name__}"
        assert fixups_for(fixup.library) == (fixup,)


def test_the_plan_runs_a_fixup_wherever_its_upstream_instrumentor_runs():
    plan = make_plan(AgentConfig(http_semconv="http"), EVERY_UPSTREAM)
    assert [library for library in FIXED if not plan.fixes(library)] == []
    assert plan.path("sqlalchemy") == OWN and "db_dedupe" in plan.choice("sqlalchemy").why  # the own path runs over upstream
    assert not plan.fixes("httpx") and not plan.fixes("flask")  # no fix-ups there
    upstream = make_plan(AgentConfig(sqlalchemy="upstream"), EVERY_UPSTREAM)
    assert upstream.path("sqlalchemy") == UPSTREAM and upstream.fixes("sqlalchemy")
    off = make_plan(AgentConfig(disabled_instrumentations=frozenset({"kafka", "chokepoint_sqlite3"})), EVERY_UPSTREAM)
    assert not off.fixes("kafka") and off.fixes("aiokafka")  # the upstream instrumentor off: its fix-up too
    assert off.path("sqlite3") == UPSTREAM and not off.fixes("sqlite3")
    assert "chokepoint_sqlite3 disabled: no conn.execute() traced" in off.choice("sqlite3").why
    assert not make_plan(AgentConfig(), available=frozenset()).fixes("sqlite3")  # no upstream instrumentor: nothing to fix


class SqliteEntryPoint:
    name = "sqlite3"

    def load(self):
        return SQLite3Instrumentor


def load_sqlite3(config: AgentConfig):
    distro = ChokepointDistro()
    distro.take_undo()  # what earlier loads left
    distro.plan = make_plan(config)
    try:
        distro.load_instrumentor(SqliteEntryPoint(), skip_dep_check=True)
    finally:
        distro.plan = None
    return distro.take_undo()


def revert(undo) -> None:
    for one in reversed(undo):
        one()


def test_the_distro_runs_the_fixup_after_its_instrumentor_and_the_undo_reverts_both():
    original, connect = dbapi.get_traced_connection_proxy, sqlite3.connect
    undo = load_sqlite3(AgentConfig())
    try:
        assert SQLite3Instrumentor().is_instrumented_by_opentelemetry and Sqlite3Fixups().installed
        assert dbapi.get_traced_connection_proxy is not original
    finally:
        revert(undo)
    assert dbapi.get_traced_connection_proxy is original and sqlite3.connect is connect
    assert not Sqlite3Fixups().is_instrumented_by_opentelemetry  # the next agent installs it again

    undo = load_sqlite3(AgentConfig(disabled_instrumentations=frozenset({"chokepoint_sqlite3"})))
    try:
        assert SQLite3Instrumentor().is_instrumented_by_opentelemetry and dbapi.get_traced_connection_proxy is original
    finally:
        revert(undo)


def test_through_its_entry_point_a_fixup_waits_for_its_upstream_instrumentor():
    original = dbapi.get_traced_connection_proxy
    fixup = Sqlite3Fixups()
    fixup.instrument()  # another distro loaded chokepoint_sqlite3 first: upstream's proxy is not in place yet
    assert not fixup.installed and dbapi.get_traced_connection_proxy is original
    fixup.uninstrument()
    SQLite3Instrumentor().instrument()
    try:
        fixup.instrument()
        assert fixup.installed and dbapi.get_traced_connection_proxy is not original
        fixup.uninstrument()
        assert dbapi.get_traced_connection_proxy is original
    finally:
        SQLite3Instrumentor().uninstrument()
    django = DjangoFixups()
    django.instrument()  # only chokepoint's distro hands it the instrumentor's call
    assert not django.installed
    django.uninstrument()


def test_the_agent_completes_an_instrumentor_it_did_not_load_through_the_distro():
    """SQLAlchemy past the upstream instrumentor's declared range is instrumented by the own
    SQLAlchemy integration, not the distro: the agent then runs the fix-ups over it itself."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy.engine.default import DefaultDialect

    from chokepoint.instrument.agent import Agent
    from chokepoint.instrument.integrations import SqlalchemyDedupe

    original = DefaultDialect.__dict__["connect"]
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)  # as the own integration does past the declared range
    agent = Agent(AgentConfig(probes=frozenset()), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader())
    try:
        agent.install_extras()
        assert SqlalchemyDedupe().installed and DefaultDialect.__dict__["connect"] is not original
        assert not Sqlite3Fixups().installed  # its upstream instrumentor is not on: nothing to complete
    finally:
        agent.shutdown()
        SQLAlchemyInstrumentor().uninstrument()
    assert DefaultDialect.__dict__["connect"] is original and not SqlalchemyDedupe().is_instrumented_by_opentelemetry
