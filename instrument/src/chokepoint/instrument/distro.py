"""chokepoint as an OpenTelemetry distro and configurator.

Registered as entry points (``instrument/pyproject.toml``)::

    opentelemetry_distro          chokepoint = chokepoint.instrument.distro:ChokepointDistro
    opentelemetry_configurator    chokepoint = chokepoint.instrument.agent:ChokepointConfigurator
    opentelemetry_post_instrument chokepoint = chokepoint.instrument.agent:post_instrument

so both ``chokepoint-instrument python app.py`` and plain ``opentelemetry-instrument
python app.py`` get chokepoint's defaults (if another distro is installed too, pick ours
with ``OTEL_PYTHON_DISTRO=chokepoint OTEL_PYTHON_CONFIGURATOR=chokepoint``;
``chokepoint-instrument`` sets both).

Environment defaults (set only when unset):

- ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``
- ``OTEL_SEMCONV_STABILITY_OPT_IN=http,database`` (stable attribute names)
- ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE`` gains
  ``content-length,content-encoding`` (response size and compression; no other values)
- ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` gains
  ``x-request-start,x-queue-start`` (the proxy's timestamp, for the queue time before the app;
  :mod:`chokepoint.instrument.queue_time`)

Lighter instrumentor options (why: the overhead benchmark, docs/BENCHMARKS.md):

- every instrumentor gets a no-op ``meter_provider``: the agent records the latency
  histograms itself from finished spans (one record per span instead of the upstream
  old+new semconv pairs, active-request up/down counters and size histograms);
- FastAPI and Starlette: by default not the upstream instrumentors at all but
  :mod:`chokepoint.instrument.asgi` (one lean server span); with
  ``CHOKEPOINT_ASGI=upstream`` the upstream FastAPI instrumentor with
  ``exclude_spans=["receive", "send"]`` (no per-message ASGI spans);
- httpx: by default not the upstream instrumentor but :mod:`chokepoint.instrument.httpx_lean`
  (the same client span from one lean transport wrapper, installed with the agent's
  extras); with ``CHOKEPOINT_HTTPX=upstream``, or HTTP semconv other than ``http``, the
  upstream instrumentor;
- requests and urllib3: likewise :mod:`chokepoint.instrument.requests_lean` and
  :mod:`chokepoint.instrument.urllib3_lean` (installed here, in the upstream instrumentors'
  place) unless ``CHOKEPOINT_REQUESTS=upstream`` / ``CHOKEPOINT_URLLIB3=upstream``;
- ``system_metrics`` is skipped: the runtime probe reports process CPU/RSS/GC.

Where upstream falls short under zero-code-change instrumentation, two instrumentor options
(:data:`INSTRUMENTOR_OPTIONS`):

- Django: a ``response_hook`` gives a response sent without ``Content-Length`` its body size.
- urllib3: a ``request_hook`` puts ``server.address``/``server.port`` on the client span
  (upstream sets them on its metrics only), so calls are attributed to their host.
- kafka-python: a ``consume_hook`` marks its consumer spans as receives, not processing.

and the fix-up integrations (:mod:`chokepoint.instrument.integrations`), run right after
their upstream instrumentor when the plan says so
(:meth:`~chokepoint.instrument.plan.Plan.fixes`), each switched off with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_<name>``; their undo waits here for the
agent (:meth:`ChokepointDistro.take_undo`):

- ``chokepoint_django``: Django instrumented once the project's settings load (right away,
  or after the first ``django.setup()``), never with Django's default settings
  (:mod:`chokepoint.instrument.django_deferred`).
- ``chokepoint_confluent_kafka``, ``chokepoint_kafka``, ``chokepoint_aiokafka``: waiting for
  the broker's acknowledgement (confluent-kafka ``flush()``, kafka-python ``send().get()``,
  aiokafka ``send_and_wait()``) counts as the request's Kafka time
  (:mod:`chokepoint.instrument.kafka_produce_wait`); consumers' work runs in the producer's
  trace (confluent-kafka: :mod:`chokepoint.instrument.kafka_context`; kafka-python /
  aiokafka: a ``<topic> process`` span, :mod:`chokepoint.instrument.kafka_process`).
- ``chokepoint_sqlalchemy_dedupe``: one span per statement, not SQLAlchemy's plus the
  driver's (:mod:`chokepoint.instrument.db_dedupe`,
  :mod:`chokepoint.instrument.sqlalchemy_async_dedupe`).
- ``chokepoint_sqlite3``: ``conn.execute()`` / ``conn.executemany()`` traced like cursor
  statements (:mod:`chokepoint.instrument.sqlite_shortcuts`).

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` works as usual (handled by the loader).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.metrics import NoOpMeterProvider

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.instruments import CAPTURED_RESPONSE_HEADERS
from chokepoint.instrument.integrations import fixups_for
from chokepoint.instrument.plan import Plan, make_plan
from chokepoint.instrument.queue_time import capture_request_start

_log = logging.getLogger("chokepoint.instrument")


def django_response_size(span, _request, response) -> None:
    """Django ``response_hook``: the body size of a response sent without ``Content-Length``.

    Django sets the header only in ``CommonMiddleware``; a project without it sends none, and
    the response size (and so ``uncompressed_response``) was unseen.  Streaming responses are
    left alone (their body is not in memory).  Never raises.
    """
    try:
        if span.is_recording() and not getattr(response, "streaming", True) and not response.has_header("Content-Length"):
            span.set_attribute("http.response.header.content_length", (str(len(response.content)),))
    except Exception:
        _log.debug("chokepoint: django response size hook failed", exc_info=True)


def urllib3_server_address(span, pool, _request_info=None) -> None:
    """urllib3 ``request_hook``: ``server.address``/``server.port`` on the client span.

    Under stable HTTP semconv the upstream urllib3 instrumentor puts them on its (no-op)
    metrics only, so chokepoint's ``http.client.request.duration`` and the breakdown saw
    every urllib3 call (boto3, elasticsearch, ...) as host ``unknown``.  Never raises.
    """
    try:
        if span.is_recording():
            host, port = getattr(pool, "host", None), getattr(pool, "port", None)
            if host:
                span.set_attribute("server.address", str(host).strip("[]"))
            if isinstance(port, int):
                span.set_attribute("server.port", port)
    except Exception:
        _log.debug("chokepoint: urllib3 request hook failed", exc_info=True)


def kafka_python_receive(span, record=None, _args=None, _kwargs=None) -> None:
    """kafka-python ``consume_hook``: the ``<topic> receive`` span says it is a receive.

    Upstream sets no operation on it, and the agent took the zero-length span for message
    processing (``messaging.process.duration`` near 0); with
    ``messaging.operation.type=receive`` and ``messaging.destination.name`` it is recorded
    as ``messaging.client.operation.duration``, as aiokafka's.  Never raises.
    """
    try:
        if span.is_recording():
            span.set_attribute("messaging.operation.type", "receive")
            topic = getattr(record, "topic", None)
            if topic:
                span.set_attribute("messaging.destination.name", str(topic))
    except Exception:
        _log.debug("chokepoint: kafka-python consume hook failed", exc_info=True)


INSTRUMENTOR_OPTIONS: dict[str, dict] = {
    "django": {"response_hook": django_response_size},
    "fastapi": {"exclude_spans": ["receive", "send"]},
    "urllib3": {"request_hook": urllib3_server_address},
    "kafka": {"consume_hook": kafka_python_receive},
}
_CAPTURE_RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
OWN_ENTRY_POINT_PREFIX = "chokepoint_"  # chokepoint's own integrations (chokepoint.instrument.integrations)


def apply_environment_defaults(environ=None) -> None:
    env = os.environ if environ is None else environ
    env.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    env.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    existing = [h.strip().lower() for h in env.get(_CAPTURE_RESPONSE, "").split(",") if h.strip()]
    for header in CAPTURED_RESPONSE_HEADERS.split(","):
        if header not in existing:
            existing.append(header)
    env[_CAPTURE_RESPONSE] = ",".join(existing)
    capture_request_start(env)  # upstream WSGI/Flask/Django server spans carry X-Request-Start for the queue time


def instrumentor_options(name: str, environ=None, plan: Plan | None = None) -> dict | None:
    """Keyword arguments chokepoint passes to upstream instrumentor ``name``; ``None`` when the
    plan does not run it (chokepoint's own integration instead, or off)."""
    if plan is None:
        plan = make_plan(AgentConfig.from_env(environ))
    if not plan.runs_upstream(name):
        return None
    return {"meter_provider": NoOpMeterProvider(), **INSTRUMENTOR_OPTIONS.get(name, {})}


class ChokepointDistro(BaseDistro):
    """The distro ``opentelemetry-instrument`` loads (one instance: ``BaseDistro`` is a singleton).

    ``plan``: the plan it follows — the agent's when the agent loads the instrumentors
    (:func:`chokepoint.instrument.agent.instrument_libraries`), else one made from the
    environment at the first instrumentor.  Every instrumentor it runs and every fix-up
    it installs leaves its undo here until the agent takes them (:meth:`take_undo`), so
    ``Agent.shutdown()`` reverts them too."""

    plan: Plan | None = None

    def _configure(self, **kwargs):
        apply_environment_defaults()

    def take_undo(self) -> list[Callable[[], None]]:
        """The undo callables collected so far, in install order (and forget them)."""
        undo, self._undo = self.__dict__.get("_undo", []), []
        return undo

    def _keep(self, undo: Callable[[], None] | None) -> None:
        if undo is not None:
            self.__dict__.setdefault("_undo", []).append(undo)

    def load_instrumentor(self, entry_point, **kwargs):
        if entry_point.name.startswith(OWN_ENTRY_POINT_PREFIX):  # the agent installs its own, from the plan
            return
        if self.plan is None:
            self.plan = make_plan(AgentConfig.from_env())
        options = instrumentor_options(entry_point.name, plan=self.plan)
        if options is None:
            _log.debug("chokepoint: skipping instrumentor %s (%s)", entry_point.name, self.plan.path(entry_point.name))
            return
        options.update(kwargs)
        instrumentor = entry_point.load()
        fixups = [cls() for cls in fixups_for(entry_point.name)] if self.plan.fixes(entry_point.name) else []

        def run_upstream() -> None:
            instrumentor().instrument(**options)

        if not any(fixup.runs_upstream() for fixup in fixups):  # else the fix-up decides when (Django)
            run_upstream()
        self._keep(lambda: instrumentor().uninstrument())
        for fixup in fixups:  # the plan's fix-ups over this instrumentor (chokepoint.instrument.integrations)
            try:
                if fixup.is_instrumented_by_opentelemetry:  # left by an earlier load: this load's instrumentor gets it anew
                    fixup.uninstrument()
                fixup.instrument(plan=self.plan, run_upstream=run_upstream if fixup.runs_upstream() else None, skip_dep_check=True)
            except Exception:  # a fix that fails leaves the upstream instrumentation as it is
                _log.warning("chokepoint: completing the %s instrumentation failed", entry_point.name, exc_info=True)
            self._keep(fixup.uninstrument)  # also when it patched nothing: the next agent installs it again
