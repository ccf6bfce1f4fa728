import gc

import pytest
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.instrument import agent as agent_module
from chokepoint.instrument import signals
from chokepoint.instrument.agent import Agent, install_probes, instrument, start
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.lean_spans import LeanSpan


def metric_names(reader) -> set[str]:
    data = reader.get_metrics_data()
    return {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics} if data else set()


@pytest.fixture
def fresh_agent_state():
    agent_module._reset_for_tests()
    yield
    agent_module._reset_for_tests()


def test_agent_records_requests_and_exports_kept_traces():
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    agent = Agent(AgentConfig(trace_sample_rate=0.0), span_exporter=exporter, metric_reader=reader)
    tracer = agent.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER, attributes={"http.route": "/a", "http.request.method": "GET"}) as span:
        span.set_status(Status(StatusCode.ERROR))
    agent.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /a"]
    assert {signals.HTTP_SERVER_DURATION, signals.REQUEST_BREAKDOWN_TIME, signals.AGENT_EXPORTED_TRACES} <= metric_names(reader)
    agent.shutdown()


@pytest.mark.parametrize("spans", ["lean", "sdk"])
def test_agent_spans_are_lean_unless_switched_off_or_another_processor_is_added(spans):
    exporter = InMemorySpanExporter()
    agent = Agent(AgentConfig(trace_sample_rate=1.0, spans=spans), span_exporter=exporter, metric_reader=InMemoryMetricReader())
    tracer = agent.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER, attributes={"http.route": "/a"}) as span:
        assert (type(span) is LeanSpan) is (spans == "lean")
    users = InMemorySpanExporter()
    agent.tracer_provider.add_span_processor(SimpleSpanProcessor(users))  # a user's own exporter wants SDK spans
    with tracer.start_as_current_span("GET /b", kind=SpanKind.SERVER, attributes={"http.route": "/b"}) as span:
        assert type(span) is not LeanSpan
    agent.force_flush()
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["GET /a", "GET /b"]
    assert [s.name for s in users.get_finished_spans()] == ["GET /b"]
    agent.shutdown()


def test_upstream_instrumentation_meters_are_no_ops():
    agent = Agent(AgentConfig(), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader())
    assert isinstance(agent.meter_provider.get_meter("opentelemetry.instrumentation.dbapi"), NoOpMeter)
    assert not isinstance(agent.meter_provider.get_meter("chokepoint.instrument.probes"), NoOpMeter)
    agent.shutdown()


def test_a_throwing_exporter_never_reaches_the_app():
    class Exploding(SpanExporter):
        def export(self, spans):
            raise RuntimeError("exporter bug")

        def shutdown(self):
            raise RuntimeError("shutdown bug")

    reader = InMemoryMetricReader()
    agent = Agent(AgentConfig(trace_sample_rate=1.0), span_exporter=Exploding(), metric_reader=reader)
    tracer = agent.tracer_provider.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER):
            pass
    agent.force_flush()
    agent.shutdown()  # must not raise either


def test_probe_failures_are_contained(monkeypatch):
    import chokepoint.instrument.probes as probes

    def broken_install_all(meter, *, enabled=None, lean=None):
        raise RuntimeError("probe bug")

    monkeypatch.setattr(probes, "install_all", broken_install_all)
    assert install_probes(object(), None) == []
    assert install_probes(object(), frozenset()) == []  # CHOKEPOINT_PROBES=none: not even called


def test_probes_are_installed_and_uninstalled_with_the_agent(monkeypatch):
    import chokepoint.instrument.probes as probes

    seen = {}

    class FakeProbe:
        name = "fake"

        def uninstall(self):
            seen["uninstalled"] = True
            raise RuntimeError("uninstall bug")  # contained

    def install_all(meter, *, enabled=None, lean=None):
        seen["enabled"] = enabled
        return [FakeProbe()]

    monkeypatch.setattr(probes, "install_all", install_all)
    agent = Agent(AgentConfig(probes=frozenset({"runtime"})), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader())
    agent.install_extras()
    agent.install_extras()  # idempotent
    assert seen["enabled"] == {"runtime"} and [p.name for p in agent.probes] == ["fake"]
    agent.shutdown()
    assert seen["uninstalled"] is True


def test_start_is_idempotent_and_respects_disable(fresh_agent_state):
    first = start(AgentConfig(), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False)
    second = start(AgentConfig(), span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False)
    assert first is second is agent_module.current_agent()
    agent_module._reset_for_tests()
    assert start(AgentConfig(enabled=False), set_global=False) is None


def test_instrument_never_raises_when_set_up_fails(fresh_agent_state, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("set-up bug")

    monkeypatch.setattr(agent_module, "Agent", broken)
    assert instrument(AgentConfig(), set_global=False, libraries=False) is None
    assert "set-up failed" in caplog.text


def test_instrument_logs_config_problems(fresh_agent_state, caplog):
    config = AgentConfig.from_env({"CHOKEPOINT_TRACE_SAMPLE_RATE": "x"})
    agent = instrument(config, span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False, libraries=False)
    assert agent is not None
    assert "CHOKEPOINT_TRACE_SAMPLE_RATE='x' is not a number" in caplog.text


def test_gc_freeze_only_when_asked(fresh_agent_state):
    config = AgentConfig(probes=frozenset())
    instrument(config, span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False, libraries=False)
    assert gc.get_freeze_count() == 0
    agent_module._reset_for_tests()
    try:
        frozen = AgentConfig(probes=frozenset(), gc_freeze=True)
        instrument(frozen, span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False, libraries=False)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
