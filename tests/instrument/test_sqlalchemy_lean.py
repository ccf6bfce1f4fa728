"""The lean SQLAlchemy hot path makes the spans the upstream instrumentor makes (real PostgreSQL),
in both modes: statement spans from the dialect's execute methods (``dialect``, no engine
listeners) and from upstream's engine listeners (``listeners``)."""

import asyncio
import gc

import pytest
import sqlalchemy as sa
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument import sqlalchemy_lean
from chokepoint.instrument.sqlalchemy_lean import install_lean_sqlalchemy, instrument_beyond_declared_range, spans_mode

MODES = pytest.mark.parametrize("mode", ["dialect", "listeners"])


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    yield provider, exporter
    instrumentor.uninstrument()


def workload(url: str, provider) -> None:
    engine = sa.create_engine(url, pool_size=2)
    with provider.get_tracer("test").start_as_current_span("request"), engine.connect() as conn:
        for n in range(3):
            conn.execute(sa.text("SELECT :n + 1"), {"n": n}).scalar()
        conn.execute(sa.text("SELECT 1")).scalar()
        with pytest.raises(sa.exc.ProgrammingError):
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    with pytest.raises(sa.exc.OperationalError):  # refused: the connect span records it
        sa.create_engine(url.replace(f":{engine.url.port}/", ":9/"), pool_size=1).connect()
    engine.dispose()


def shapes(exporter) -> list:
    by_id = {span.context.span_id: span.name for span in exporter.get_finished_spans()}
    return [
        (
            span.name,
            span.kind,
            list(span.attributes.items()),
            span.status.status_code,
            span.status.description,
            [(e.name, e.attributes.get("exception.type")) for e in span.events],
            by_id.get(span.parent.span_id) if span.parent else None,
        )
        for span in exporter.get_finished_spans()
    ]


@MODES
def test_lean_path_makes_the_upstream_spans(postgres, traced, mode):
    provider, exporter = traced
    workload(postgres.url, provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy(mode)
    assert undo is not None
    try:
        workload(postgres.url, provider)
        lean = shapes(exporter)
    finally:
        undo()
    db = sa.make_url(postgres.url).database
    assert [s[0] for s in upstream] == ["connect", "SELECT " + db, "SELECT " + db, "SELECT " + db, "SELECT " + db, "SELECT " + db, "request", "connect"]
    assert lean == upstream
    statements = [dict(s[2]).get("db.query.text") or dict(s[2]).get("db.statement") for s in lean[1:6]]
    assert statements == ["SELECT %(n)s + 1"] * 3 + ["SELECT 1", "SELECT * FROM no_such_table"]


def test_undo_restores_the_upstream_instrumentor(traced):
    before = EngineTracer.__dict__["_before_cur_exec"], sa.engine.base.Engine.__dict__["connect"]
    undo = install_lean_sqlalchemy()
    assert EngineTracer.__dict__["_before_cur_exec"] is not before[0]
    assert install_lean_sqlalchemy() is None  # once
    undo()
    assert (EngineTracer.__dict__["_before_cur_exec"], sa.engine.base.Engine.__dict__["connect"]) == before


def test_pool_listeners_skipped_only_when_their_counter_is_a_noop(postgres, traced):
    undo = install_lean_sqlalchemy("listeners")
    try:
        engine = sa.create_engine(postgres.url)
        assert not sa.event.contains(engine, "checkout", engine_tracer(engine)._pool_checkout)
        assert sa.event.contains(engine, "before_cursor_execute", engine_tracer(engine)._before_cur_exec)
        engine.dispose()
    finally:
        undo()


def engine_tracer(engine) -> EngineTracer:
    for ref, identifier, func in EngineTracer._remove_event_listener_params:
        if ref() is engine and identifier == "before_cursor_execute":
            return func.__self__
    raise AssertionError("engine not traced")


def two_database_workload(url: str, other_db: str, provider) -> None:
    """One engine whose DB-API connections alternate between two databases (``do_connect``
    picks the database), re-opened after a dispose: each span must name its connection's."""
    engine = sa.create_engine(url, pool_size=2)
    databases = [other_db, sa.make_url(url).database]

    @sa.event.listens_for(engine, "do_connect")
    def pick_database(dialect, record, cargs, cparams):
        databases.reverse()
        cparams["dbname"] = databases[0]

    with provider.get_tracer("test").start_as_current_span("request"):
        for _ in range(2):
            with engine.connect() as first, engine.connect() as second:
                for conn in (first, second, first, second):
                    conn.execute(sa.text("SELECT current_database()")).scalar()
            engine.dispose()


@MODES
def test_lean_path_names_each_statement_by_its_connections_database(postgres, traced, mode):
    import psycopg

    with psycopg.connect(postgres.dsn, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'lean_other'").fetchone() is None:
            admin.execute("CREATE DATABASE lean_other")
    provider, exporter = traced
    two_database_workload(postgres.url, "lean_other", provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy(mode)
    try:
        two_database_workload(postgres.url, "lean_other", provider)
        lean = shapes(exporter)
    finally:
        undo()
    assert lean == upstream
    db = sa.make_url(postgres.url).database
    names = [s[0] for s in lean if s[0].startswith("SELECT")]
    assert names == ["SELECT " + db, "SELECT lean_other"] * 4 or names == ["SELECT lean_other", "SELECT " + db] * 4


def suppressed_workload(url: str, provider) -> None:
    """Statements and a connect with instrumentation suppressed (both keys), between traced ones."""
    from opentelemetry import context
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    engine = sa.create_engine(url, pool_size=1)
    with provider.get_tracer("test").start_as_current_span("request"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
            with suppress_instrumentation():
                conn.execute(sa.text("SELECT 2")).scalar()
            token = context.attach(context.set_value("suppress_instrumentation", True))  # the plain-string key
            try:
                conn.execute(sa.text("SELECT 3")).scalar()
            finally:
                context.detach(token)
            conn.execute(sa.text("SELECT 4")).scalar()
        with suppress_instrumentation(), engine.connect() as conn:
            conn.execute(sa.text("SELECT 5")).scalar()
    engine.dispose()


@MODES
def test_lean_path_respects_suppressed_instrumentation_as_upstream(postgres, traced, mode):
    provider, exporter = traced
    suppressed_workload(postgres.url, provider)
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy(mode)
    try:
        suppressed_workload(postgres.url, provider)
        lean = shapes(exporter)
    finally:
        undo()
    assert lean == upstream
    statements = [dict(s[2]).get("db.query.text") or dict(s[2]).get("db.statement") for s in lean if s[0].startswith("SELECT")]
    assert statements == ["SELECT 1", "SELECT 4"] and [s[0] for s in lean].count("connect") == 1


def upstream_and_lean(run, provider, exporter, mode="dialect") -> tuple[list, list]:
    """``run()``'s spans under the upstream instrumentor, then with the lean path installed."""
    run()
    upstream = shapes(exporter)
    exporter.clear()
    undo = install_lean_sqlalchemy(mode)
    assert undo is not None
    try:
        run()
        return upstream, shapes(exporter)
    finally:
        undo()
        exporter.clear()


def statement_of(shape) -> str:
    attributes = dict(shape[2])
    return attributes.get("db.query.text") or attributes.get("db.statement")


def executemany_workload(url: str, provider) -> None:
    """executemany through the driver (``exec_driver_sql`` with a list), Core inserts of many
    rows (insertmanyvalues batches, one ``do_execute`` each), a failing executemany, and
    statements without parameters; spans nested two levels under the request."""
    engine = sa.create_engine(url, pool_size=1, insertmanyvalues_page_size=2)
    table = sa.Table("lean_many", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"), engine.connect() as conn:
        with tracer.start_as_current_span("handler"):
            conn.exec_driver_sql("CREATE TEMP TABLE lean_many (id int primary key, v text)")
            conn.exec_driver_sql("INSERT INTO lean_many VALUES (%(id)s, %(v)s)", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
            conn.execute(table.insert().returning(table.c.id), [{"id": n, "v": str(n)} for n in range(3, 8)]).all()
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql("INSERT INTO lean_many VALUES (%(id)s, %(v)s)", [{"id": 9, "v": "a"}, {"id": 9, "v": "b"}])
        conn.rollback()
        conn.exec_driver_sql("SELECT 1").scalar()
    engine.dispose()


def test_dialect_path_traces_executemany_failures_and_nesting_as_upstream(postgres, traced):
    provider, exporter = traced
    upstream, lean = upstream_and_lean(lambda: executemany_workload(postgres.url, provider), provider, exporter)
    assert lean == upstream
    db = sa.make_url(postgres.url).database
    by_statement = {statement_of(s): s for s in lean if s[0] != "connect" and s[0] not in ("request", "handler")}
    assert by_statement["INSERT INTO lean_many VALUES (%(id)s, %(v)s)"][3].name == "ERROR"  # the last one failed
    assert "duplicate key" in by_statement["INSERT INTO lean_many VALUES (%(id)s, %(v)s)"][4]
    assert [s[6] for s in lean if s[0] == "INSERT " + db][:4] == ["handler"] * 4  # one span per insertmanyvalues batch too
    assert sum(1 for s in lean if s[0] == "INSERT " + db) == 2 + 3


def test_dialect_path_registers_no_engine_listeners(postgres, traced):
    _, exporter = traced
    undo = install_lean_sqlalchemy("dialect")
    try:
        engine = sa.create_engine(postgres.url, pool_size=1)
        assert [identifier for ref, identifier, _ in EngineTracer._remove_event_listener_params if ref() is engine] == []
        assert {"do_execute", "do_executemany", "do_execute_no_params"} <= set(vars(engine.dialect))
        with engine.connect() as conn:
            assert not (conn._has_events or engine._has_events)  # SQLAlchemy keeps its fast path
            conn.execute(sa.text("SELECT 1")).scalar()
        assert [s.name for s in exporter.get_finished_spans()][-1].startswith("SELECT ")
        engine.dispose()
    finally:
        undo()
    assert "do_execute" not in vars(engine.dialect)  # undone


def rewritten_workload(url: str, provider) -> None:
    """The application rewrites statements in its own ``before_cursor_execute`` (retval=True)."""
    engine = sa.create_engine(url, pool_size=1)

    @sa.event.listens_for(engine, "before_cursor_execute", retval=True)
    def tag(conn, cursor, statement, parameters, context, executemany):
        return statement + " /* tagged */", parameters

    with provider.get_tracer("test").start_as_current_span("request"), engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar()
    engine.dispose()


def test_dialect_path_spans_carry_the_statement_as_executed(postgres, traced):
    provider, exporter = traced
    upstream, lean = upstream_and_lean(lambda: rewritten_workload(postgres.url, provider), provider, exporter)
    assert [statement_of(s) for s in upstream if s[0].startswith("SELECT")] == ["SELECT 1"]  # upstream: before the rewrite
    assert [statement_of(s) for s in lean if s[0].startswith("SELECT")] == ["SELECT 1 /* tagged */"]
    assert [s[:2] + s[3:] for s in lean] == [s[:2] + s[3:] for s in upstream]  # otherwise the same spans


def sqlite_workload(provider) -> None:
    engine = sa.create_engine("sqlite://")  # no host in the URL: upstream's own path (listeners) for this engine
    with provider.get_tracer("test").start_as_current_span("request"), engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar()
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM nowhere"))
    engine.dispose()


def test_dialect_path_keeps_the_listeners_for_engines_without_a_host(traced):
    provider, exporter = traced
    upstream, lean = upstream_and_lean(lambda: sqlite_workload(provider), provider, exporter)
    assert lean == upstream
    assert [s[0] for s in lean] == ["connect", "SELECT", "SELECT", "request"]


def test_dialect_path_keeps_the_listeners_with_the_sql_commenter(postgres):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), enable_commenter=True, skip_dep_check=True)
    try:
        upstream, lean = upstream_and_lean(lambda: workload(postgres.url, provider), provider, exporter)
    finally:
        instrumentor.uninstrument()
    assert lean == upstream


def test_dialect_path_keeps_the_listeners_when_the_dialect_handles_execute_itself(postgres, traced):
    """A ``do_execute`` dialect event that runs the statement itself (returns True) bypasses the
    dialect's method: engines created while such an event exists keep the listeners."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    provider, exporter = traced

    def execute_itself(cursor, statement, parameters, context):
        cursor.execute(statement, parameters)
        return True

    sa.event.listen(PGDialect_psycopg, "do_execute", execute_itself)
    try:
        upstream, lean = upstream_and_lean(lambda: workload(postgres.url, provider), provider, exporter)
    finally:
        sa.event.remove(PGDialect_psycopg, "do_execute", execute_itself)
    assert lean == upstream
    assert sum(1 for s in lean if s[0].startswith("SELECT")) == 5


def test_uninstrument_unwraps_the_dialects(postgres):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    undo = install_lean_sqlalchemy("dialect")
    try:
        engine = sa.create_engine(postgres.url, pool_size=1)
        assert "do_execute" in vars(engine.dialect)
        instrumentor.uninstrument()
        assert "do_execute" not in vars(engine.dialect)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
        assert [s.name for s in exporter.get_finished_spans()] == []
        engine.dispose()
    finally:
        undo()


def async_workload(url: str, provider) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, pool_size=1)
        with provider.get_tracer("test").start_as_current_span("request"):
            async with engine.connect() as conn:
                for n in range(2):
                    (await conn.execute(sa.text("SELECT :n + 1"), {"n": n})).scalar()
                with pytest.raises(sa.exc.ProgrammingError):
                    await conn.execute(sa.text("SELECT * FROM no_such_table"))
        await engine.dispose()

    asyncio.run(run())


def test_dialect_path_traces_async_engines_as_upstream(postgres, traced):
    provider, exporter = traced
    url = postgres.url.replace("postgresql+psycopg://", "postgresql+psycopg_async://")
    upstream, lean = upstream_and_lean(lambda: async_workload(url, provider), provider, exporter)
    gc.collect()  # upstream's two listener sets on one async engine fail its own uninstrument while the engine lives
    assert lean == upstream
    assert sum(1 for s in lean if s[0].startswith("SELECT")) == 3


def test_spans_mode_reads_the_environment(caplog):
    assert spans_mode({}) == "dialect"
    assert spans_mode({"CHOKEPOINT_SQLALCHEMY_SPANS": " Listeners "}) == "listeners"
    assert spans_mode({"CHOKEPOINT_SQLALCHEMY_SPANS": "events"}) == "dialect"
    assert "must be dialect or listeners" in caplog.text


def test_dialect_path_never_raises_into_the_application(postgres, traced, monkeypatch):
    from chokepoint.instrument import sqlalchemy_lean

    class BrokenTracer:
        def start_span(self, *args, **kwargs):
            raise RuntimeError("tracer broken")

    undo = install_lean_sqlalchemy("dialect")
    try:
        engine = sa.create_engine(postgres.url, pool_size=1)
        monkeypatch.setattr(sqlalchemy_lean._tracers[engine.dialect][0], "tracer", BrokenTracer())
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 41 + 1")).scalar() == 42  # the statement runs, untraced
            conn.exec_driver_sql("CREATE TEMP TABLE lean_broken (id int)")
            conn.exec_driver_sql("INSERT INTO lean_broken VALUES (%(id)s)", [{"id": 1}, {"id": 2}])
            assert conn.exec_driver_sql("SELECT count(*) FROM lean_broken").scalar() == 2
        engine.dispose()
    finally:
        undo()


def two_engines_workload(url: str, other_url: str, provider) -> None:
    """Two engines on two databases, interleaved, one of them through an ``execution_options``
    copy (an ``OptionEngine``: the same dialect, the parent's events)."""
    first, second = sa.create_engine(url, pool_size=1), sa.create_engine(other_url, pool_size=1)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"), first.connect() as a, second.execution_options(isolation_level="AUTOCOMMIT").connect() as b:
        for conn in (a, b, a, b):
            with tracer.start_as_current_span("step"):
                conn.execute(sa.text("SELECT current_database()")).scalar()
    first.dispose()
    second.dispose()


def test_dialect_path_traces_two_engines_on_two_databases_as_upstream(postgres, traced):
    import psycopg

    with psycopg.connect(postgres.dsn, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'lean_other'").fetchone() is None:
            admin.execute("CREATE DATABASE lean_other")
    other_url = sa.make_url(postgres.url).set(database="lean_other").render_as_string(hide_password=False)
    provider, exporter = traced
    upstream, lean = upstream_and_lean(lambda: two_engines_workload(postgres.url, other_url, provider), provider, exporter)
    assert lean == upstream
    db = sa.make_url(postgres.url).database
    assert [(s[0], s[6]) for s in lean if s[0].startswith("SELECT")] == [("SELECT " + db, "step"), ("SELECT lean_other", "step")] * 2


def test_an_engine_kept_on_the_listeners_is_logged_once_with_its_reason(traced, caplog, monkeypatch):
    provider, exporter = traced
    monkeypatch.setattr(sqlalchemy_lean, "_logged", set())
    undo = install_lean_sqlalchemy("dialect")
    try:
        with caplog.at_level("INFO", logger="chokepoint.instrument.sqlalchemy_lean"):
            sqlite_workload(provider)
            sqlite_workload(provider)
    finally:
        undo()
    lines = [r.getMessage() for r in caplog.records if "statement spans from the upstream listeners" in r.getMessage()]
    assert lines == ["chokepoint: SQLAlchemy sqlite engine: statement spans from the upstream listeners (its URL has no host)"]
    assert [s.name for s in exporter.get_finished_spans()].count("SELECT") == 4  # the listeners traced both runs


def test_instrumented_beyond_the_declared_range_only_when_skipped_for_it(traced):
    provider, _ = traced
    instrumentor = SQLAlchemyInstrumentor()
    assert instrument_beyond_declared_range() is None  # already on
    instrumentor.uninstrument()
    undo = instrument_beyond_declared_range()
    try:  # SQLAlchemy 2.1: instrumented; inside upstream's range: left as the launcher and the user chose
        beyond = get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is not None
        assert (undo is not None, instrumentor.is_instrumented_by_opentelemetry) == (beyond, beyond)
    finally:
        if undo is not None:
            undo()
        instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)


def agent_workload(url: str, lean: bool) -> tuple[list, dict]:
    """A request (server span) doing a connect and four statements (one failing), one more
    under the user's own span, and a refused connect, through the agent's processor keeping every trace; (the kept trace's
    span shapes, sorted; the DB metrics and breakdown)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import SpanKind

    from chokepoint.instrument.config import AgentConfig
    from chokepoint.instrument.lean_spans import LeanTracerProvider
    from tests.instrument.conftest import Harness

    harness = Harness(AgentConfig(trace_sample_rate=1.0))
    provider = LeanTracerProvider(sampler=ALWAYS_ON, lean=lean, shutdown_on_exit=False)
    provider.add_span_processor(harness.processor)
    assert provider.lean is lean
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider(), skip_dep_check=True)
    undo = install_lean_sqlalchemy("dialect")
    try:
        engine = sa.create_engine(url, pool_size=1)
        tracer = provider.get_tracer("test")
        server = tracer.start_as_current_span("GET /r", kind=SpanKind.SERVER, attributes={"http.route": "/r", "http.request.method": "GET"})
        with server, engine.connect() as conn:
            for n in range(3):
                conn.execute(sa.text("SELECT :n + 1"), {"n": n}).scalar()
            with pytest.raises(sa.exc.ProgrammingError):
                conn.execute(sa.text("SELECT * FROM no_such_table"))
            conn.rollback()
            with tracer.start_as_current_span("handler"):
                conn.execute(sa.text("SELECT 2")).scalar()
            with pytest.raises(sa.exc.OperationalError):  # refused: the connect span records it
                sa.create_engine(url.replace(f":{engine.url.port}/", ":9/"), pool_size=1).connect()
        engine.dispose()
        harness.flush()
        measured = {
            "db": sorted((dict(k)["db.query.text"], n) for k, n in harness.metric_values("db.client.operation.duration").items()),
            "queries": [(p.count, p.sum) for p in harness.metric_points("chokepoint.request.db.queries")],
            "components": sorted(dict(k)["chokepoint.component"] for k in harness.metric_values("chokepoint.request.breakdown.time")),
            "kept": harness.metric_values("chokepoint.agent.exported_traces"),
        }
        return sorted(shapes(harness.exporter), key=repr), measured
    finally:
        undo()
        instrumentor.uninstrument()
        harness.close()


def test_statements_of_a_request_are_leaves_exported_as_the_spans_they_replace(postgres, traced, monkeypatch):
    """With lean spans, a request's statements go into its record (no span objects) and become
    spans only in the kept trace: the same spans (names, attributes, status, parents), metrics
    and breakdown as with the SDK's span objects."""
    from chokepoint.instrument import lean_spans

    recorded = []
    leaf_request = lean_spans.leaf_request
    monkeypatch.setattr(lean_spans, "leaf_request", lambda *a: recorded.append(leaf_request(*a)) or recorded[-1])
    as_spans = agent_workload(postgres.url, lean=False)
    assert recorded == [None] * 7  # SDK spans: no statement or connect is a leaf
    recorded.clear()
    as_leaves = agent_workload(postgres.url, lean=True)
    assert len(recorded) == 7 and None not in recorded  # every statement and connect a leaf (the refused one made a span)
    assert as_leaves == as_spans
    spans, measured = as_leaves
    assert [s[0] for s in spans].count("SELECT chokepoint") == 5 and sum(s[3].name == "ERROR" for s in spans) == 2
    assert sorted(s[5] for s in spans if s[0] == "connect") == [[], [("exception", "sqlalchemy.exc.OperationalError")]]
    assert {s[6] for s in spans if s[0] == "SELECT chokepoint"} == {"GET /r", "handler"}
    assert measured["queries"] == [(1, 5)] and "db" in measured["components"]
    assert measured["db"] == [("SELECT %(n)s + ?", 3), ("SELECT * FROM no_such_table", 1), ("SELECT ?", 1)]
