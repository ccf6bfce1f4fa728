from importlib.metadata import entry_points

from opentelemetry.metrics import NoOpMeterProvider

from chokepoint.instrument.agent import ChokepointConfigurator
from chokepoint.instrument.distro import ChokepointDistro, apply_environment_defaults, instrumentor_options


def test_entry_points_are_registered():
    def names(group):
        return {ep.name: ep.value for ep in entry_points(group=group)}

    assert names("opentelemetry_distro")["chokepoint"] == "chokepoint.instrument.distro:ChokepointDistro"
    assert names("opentelemetry_configurator")["chokepoint"] == "chokepoint.instrument.agent:ChokepointConfigurator"
    assert names("opentelemetry_post_instrument")["chokepoint"] == "chokepoint.instrument.agent:post_instrument"
    assert ChokepointConfigurator and ChokepointDistro


def test_environment_defaults_only_fill_gaps_and_merge_captured_headers():
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "X-Cache"}
    apply_environment_defaults(env)
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http"  # the user's choice stays
    assert env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"] == "x-cache,content-length,content-encoding"
    apply_environment_defaults(env)  # idempotent
    assert env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"] == "x-cache,content-length,content-encoding"
    assert env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"] == "x-request-start,x-queue-start"
    env = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "X-Tenant,X-Request-Start"}
    apply_environment_defaults(env)  # the user's headers stay, the queue-time headers are not listed twice
    assert env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"] == "X-Tenant,X-Request-Start,x-queue-start"


def test_instrumentor_options():
    assert instrumentor_options("system_metrics") is None
    assert instrumentor_options("fastapi", {}) is None  # chokepoint.instrument.asgi serves FastAPI/Starlette
    assert instrumentor_options("starlette", {"CHOKEPOINT_ASGI": "lean"}) is None
    fastapi = instrumentor_options("fastapi", {"CHOKEPOINT_ASGI": "upstream"})
    assert fastapi["exclude_spans"] == ["receive", "send"]
    assert isinstance(fastapi["meter_provider"], NoOpMeterProvider)
    assert set(instrumentor_options("requests", {})) == {"meter_provider"}
    stable = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}
    assert instrumentor_options("httpx", stable) is None  # chokepoint.instrument.httpx_lean makes the client spans
    assert set(instrumentor_options("httpx", {**stable, "CHOKEPOINT_HTTPX": "upstream"})) == {"meter_provider"}
    assert set(instrumentor_options("httpx", {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"})) == {"meter_provider"}
    assert instrumentor_options("requests", stable) is None  # chokepoint.instrument.requests_lean instead
    assert set(instrumentor_options("requests", {**stable, "CHOKEPOINT_REQUESTS": "upstream"})) == {"meter_provider"}
    assert instrumentor_options("urllib3", stable) is None  # chokepoint.instrument.urllib3_lean instead
    assert set(instrumentor_options("urllib3", {**stable, "CHOKEPOINT_URLLIB3": "upstream"})) == {"meter_provider", "request_hook"}


class FakeEntryPoint:
    def __init__(self, name):
        self.name = name
        self.calls = []

    def load(self):
        calls = self.calls

        class Instrumentor:
            def instrument(self, **kwargs):
                calls.append(kwargs)

        return Instrumentor


def test_distro_passes_options_and_skips(monkeypatch):
    monkeypatch.setenv("CHOKEPOINT_ASGI", "upstream")
    distro = ChokepointDistro()
    monkeypatch.setattr(distro, "plan", None)  # made from the environment at the first instrumentor
    fastapi, system = FakeEntryPoint("fastapi"), FakeEntryPoint("system_metrics")
    distro.load_instrumentor(fastapi, skip_dep_check=True)
    distro.load_instrumentor(system, skip_dep_check=True)
    assert fastapi.calls[0]["exclude_spans"] == ["receive", "send"] and fastapi.calls[0]["skip_dep_check"] is True
    assert system.calls == []
    monkeypatch.setenv("CHOKEPOINT_ASGI", "lean")
    skipped = FakeEntryPoint("fastapi")
    distro.load_instrumentor(skipped, skip_dep_check=True)
    assert skipped.calls[0]["exclude_spans"] == ["receive", "send"]  # the plan it made first, kept
    distro.plan = None
    skipped = FakeEntryPoint("fastapi")
    distro.load_instrumentor(skipped, skip_dep_check=True)
    assert skipped.calls == []


def test_the_distro_leaves_requests_to_the_agent_when_the_plan_says_chokepoint(monkeypatch):
    import requests

    from chokepoint.instrument.config import AgentConfig
    from chokepoint.instrument.plan import make_plan

    original = requests.Session.__dict__["send"]
    upstream = FakeEntryPoint("requests")
    distro = ChokepointDistro()
    monkeypatch.setattr(distro, "plan", make_plan(AgentConfig(http_semconv="http")))
    distro.load_instrumentor(upstream, skip_dep_check=True)
    assert upstream.calls == [] and requests.Session.__dict__["send"] is original  # the agent installs its own (test_agent)
    distro.plan = make_plan(AgentConfig(requests="upstream"))
    distro.load_instrumentor(upstream, skip_dep_check=True)
    assert upstream.calls and requests.Session.__dict__["send"] is original
