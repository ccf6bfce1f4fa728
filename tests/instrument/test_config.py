import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chokepoint.instrument import agent as agent_module
from chokepoint.instrument.config import DEFAULT_ENDPOINT, AgentConfig
from chokepoint.instrument.distro import instrumentor_options
from chokepoint.instrument.http_client_spans import http_semconv_mode, lean_client_wanted
from chokepoint.instrument.httpx_lean import install_lean_httpx, lean_httpx_wanted
from chokepoint.instrument.requests_lean import install_lean_requests, lean_requests_wanted
from chokepoint.instrument.urllib3_lean import install_lean_urllib3, lean_urllib3_wanted

LEAN_CLIENT_SWITCHES = ("CHOKEPOINT_HTTPX", "CHOKEPOINT_REQUESTS", "CHOKEPOINT_URLLIB3")


def test_defaults_without_environment():
    config = AgentConfig.from_env({})
    assert config.enabled is True
    assert config.endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4318"
    assert config.traces_url == "http://127.0.0.1:4318/v1/traces"
    assert config.metrics_url == "http://127.0.0.1:4318/v1/metrics"
    assert config.trace_sample_rate == 0.05
    assert config.slow_percentile == 95.0
    assert config.slow_floor_ms == 1000.0
    assert config.metric_export_interval_ms == 5000
    assert config.probes is None
    assert (config.sqlalchemy, config.httpx, config.export_delay_ms, config.gc_freeze) == ("lean", "lean", 1000.0, False)
    assert config.problems == ()


def test_overhead_switches_are_read_from_the_environment():
    config = AgentConfig.from_env(
        {"CHOKEPOINT_SQLALCHEMY": "upstream", "CHOKEPOINT_HTTPX": "upstream", "CHOKEPOINT_EXPORT_DELAY_MS": "0", "CHOKEPOINT_GC_FREEZE": "true"}
    )
    assert (config.sqlalchemy, config.httpx, config.export_delay_ms, config.gc_freeze) == ("upstream", "upstream", 0.0, True)
    bad = AgentConfig.from_env({"CHOKEPOINT_SQLALCHEMY": "fast", "CHOKEPOINT_EXPORT_DELAY_MS": "-5"})
    assert (bad.sqlalchemy, bad.export_delay_ms, len(bad.problems)) == ("lean", 1000.0, 2)


def test_lean_http_client_switches():
    config = AgentConfig.from_env({})
    assert (config.httpx, config.requests, config.urllib3) == ("lean", "lean", "lean")
    config = AgentConfig.from_env({"CHOKEPOINT_HTTPX": "Upstream", "CHOKEPOINT_REQUESTS": " upstream ", "CHOKEPOINT_URLLIB3": "upstream"})
    assert (config.httpx, config.requests, config.urllib3, config.problems) == ("upstream", "upstream", "upstream", ())
    bad = AgentConfig.from_env({"CHOKEPOINT_REQUESTS": "fast", "CHOKEPOINT_URLLIB3": "lean"})
    assert (bad.requests, bad.urllib3) == ("lean", "lean")
    assert bad.problems == ("CHOKEPOINT_REQUESTS='fast' must be one of lean, upstream; using lean",)


@pytest.fixture
def no_agent(monkeypatch):
    """No agent running before or after; stable HTTP semconv, the lean-client switches unset."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    for name in (*LEAN_CLIENT_SWITCHES, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(name, raising=False)
    agent_module._reset_for_tests()
    yield
    agent_module._reset_for_tests()


def test_lean_http_client_switches_are_the_running_agents(no_agent):
    """``instrument(config)`` decides like ``chokepoint-instrument`` (config from the environment):
    agent, distro and install read the one plan made from the config the agent runs with."""
    assert lean_client_wanted("requests") is True  # no config: the environment
    config = AgentConfig(requests="upstream", probes=frozenset())
    agent = agent_module.start(config, span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(), set_global=False)
    assert agent.plan.path("requests") == "upstream" and agent.plan.own("urllib3") and agent.plan.own("httpx")
    assert lean_client_wanted("requests", config=config) is False and lean_client_wanted("urllib3", config=config) is True
    assert set(instrumentor_options("requests", plan=agent.plan)) == {"meter_provider"}  # the distro keeps the upstream instrumentor
    assert instrumentor_options("urllib3", plan=agent.plan) is None
    assert install_lean_requests(config=config) is None
    assert len(agent.own_integrations()) == 4  # asgi, sqlalchemy, httpx, urllib3: not requests
    assert lean_client_wanted("requests", {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}) is True  # an environment given is read
    assert lean_client_wanted("requests", config=AgentConfig()) is True


LEAN_CLIENTS = {  # library: (its switch, whether its lean path is wanted, its install)
    "httpx": ("CHOKEPOINT_HTTPX", lean_httpx_wanted, install_lean_httpx),
    "requests": ("CHOKEPOINT_REQUESTS", lean_requests_wanted, install_lean_requests),
    "urllib3": ("CHOKEPOINT_URLLIB3", lean_urllib3_wanted, install_lean_urllib3),
}
HTTP = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}


@pytest.mark.parametrize("library", sorted(LEAN_CLIENTS))
@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": " database , http "}, True),
        ({**HTTP, "SWITCH": "upstream"}, False),
        ({**HTTP, "SWITCH": "Upstream"}, False),
        ({**HTTP, "SWITCH": "fast"}, True),  # a bad value: one of the config's problems, and lean
        ({**HTTP, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "LIBRARY"}, False),
        ({**HTTP, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis, LIBRARY"}, False),
        ({**HTTP, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}, False),  # old + new names: upstream makes them
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,http/dup"}, False),
        ({}, False),  # old names
    ],
)
def test_when_a_lean_client_path_is_used(no_agent, library, env, wanted):
    switch, lean_wanted, install = LEAN_CLIENTS[library]
    env = {switch if k == "SWITCH" else k: v.replace("LIBRARY", library) for k, v in env.items()}
    assert lean_wanted(env) is wanted
    if not wanted:
        assert install(environ=env) is None


def test_semconv_mode_reads_like_upstream():
    assert http_semconv_mode({"OTEL_SEMCONV_STABILITY_OPT_IN": "database,http/dup"}) == "http/dup"
    assert http_semconv_mode({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}) == "default"


def test_lean_client_wanted_names_the_libraries_it_knows():
    with pytest.raises(ValueError, match="no lean client path for 'aiohttp'; one of httpx, requests, urllib3"):
        lean_client_wanted("aiohttp", {})


def test_spans_switch():
    assert AgentConfig.from_env({}).spans == "lean"
    assert AgentConfig.from_env({"CHOKEPOINT_SPANS": " SDK "}).spans == "sdk"
    bad = AgentConfig.from_env({"CHOKEPOINT_SPANS": "fast"})
    assert bad.spans == "lean" and bad.problems == ("CHOKEPOINT_SPANS='fast' must be one of lean, sdk; using lean",)


def test_values_are_read_from_the_environment():
    config = AgentConfig.from_env(
        {
            "CHOKEPOINT_ENABLED": "false",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "0.25",
            "CHOKEPOINT_SLOW_FLOOR_MS": "250",
            "CHOKEPOINT_PROBES": "runtime, sqlalchemy_pool",
            "CHOKEPOINT_HEADER_ALLOWLIST": "X-Tenant,x_region",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.0.0.5:4318/",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }
    )
    assert config.enabled is False
    assert config.trace_sample_rate == 0.25
    assert config.slow_floor_ms == 250.0
    assert config.probes == frozenset({"runtime", "sqlalchemy_pool"})
    assert config.header_allowlist == frozenset({"x-tenant", "x-region"})
    assert config.service_name == "shop"
    assert config.traces_url == "http://10.0.0.5:4318/v1/traces"
    assert config.metric_export_interval_ms == 1000
    assert config.problems == ()


def test_probes_none_disables_all_probes():
    assert AgentConfig.from_env({"CHOKEPOINT_PROBES": "none"}).probes == frozenset()
    assert AgentConfig.from_env({"CHOKEPOINT_PROBES": "all"}).probes is None


def test_bad_values_fall_back_to_defaults_with_one_clear_problem_each():
    config = AgentConfig.from_env(
        {
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "lots",
            "CHOKEPOINT_SLOW_PERCENTILE": "150",
            "CHOKEPOINT_ENABLED": "maybe",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318",
        }
    )
    assert config.trace_sample_rate == 0.05
    assert config.slow_percentile == 95.0
    assert config.enabled is True
    assert config.endpoint == DEFAULT_ENDPOINT
    assert len(config.problems) == 4
    joined = "\n".join(config.problems)
    for name in ("CHOKEPOINT_TRACE_SAMPLE_RATE", "CHOKEPOINT_SLOW_PERCENTILE", "CHOKEPOINT_ENABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert name in joined
    assert "'lots' is not a number" in joined
