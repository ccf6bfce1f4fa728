"""Agent set-up: providers, the keep-slow-traces processor, library instrumentation, probes.

Usage::

    from chokepoint.instrument import instrument
    agent = instrument()          # idempotent: a second call returns the same agent

    # tests: in-memory hooks instead of OTLP, and no global providers
    agent = instrument(span_exporter=InMemorySpanExporter(), metric_reader=InMemoryMetricReader(),
                       set_global=False, libraries=False)

Call it before the web framework creates its app (``FastAPI()``, ``Flask(__name__)``),
as ``opentelemetry-instrument`` would.  Zero-code-change runs (``chokepoint-instrument``
or plain ``opentelemetry-instrument``) reach the same code through the distro and
configurator entry points (:mod:`chokepoint.instrument.distro`).

What it sets up:

- a ``TracerProvider`` with the always-on sampler (every request feeds the metrics) and
  :class:`~chokepoint.instrument.sampling.KeepSlowTracesProcessor` exporting kept traces
  over OTLP/HTTP protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``http://127.0.0.1:4318``);
  its spans are lean (:mod:`chokepoint.instrument.lean_spans`; ``CHOKEPOINT_SPANS``)
  while that processor is the only one;
- a ``MeterProvider`` exporting every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (5000) with
  **cumulative** temporality and base-2 **exponential** histograms for every histogram;
- the upstream instrumentors (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` honoured) with
  chokepoint's lighter options (:mod:`chokepoint.instrument.distro`) and, right after each, the plan's fix-up integrations over it (Django once the settings
  load, sqlite3 shortcuts, one span per SQL statement under SQLAlchemy, Kafka consumers in
  the producer's trace and produce waits; :mod:`chokepoint.instrument.integrations`);
- chokepoint's own integrations the plan chose (ASGI server spans, the HTTP clients, the
  SQLAlchemy statement path; :mod:`chokepoint.instrument.integrations`), the client flags
  (:mod:`chokepoint.instrument.client_flags`) and the probes
  (``chokepoint.instrument.probes.install_all``; ``CHOKEPOINT_PROBES``).

Nothing here raises into the app: a failing exporter, probe or patch is logged and
skipped.  ``CHOKEPOINT_ENABLED=false`` makes ``instrument()`` a no-op returning ``None``.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
from collections.abc import Callable

from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from chokepoint.instrument.client_flags import install_client_flags
from chokepoint.instrument.compat import BaseConfigurator
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.coverage import install_coverage
from chokepoint.instrument.forking import reinit_metric_export_after_fork
from chokepoint.instrument.instruments import AgentInstruments
from chokepoint.instrument.integrations import FIXUPS, OWN_INTEGRATIONS
from chokepoint.instrument.lean_spans import LeanTracerProvider
from chokepoint.instrument.plan import log_plan, make_plan
from chokepoint.instrument.sampling import KeepSlowTracesProcessor
from chokepoint.instrument.visible_log import install_visible_warnings

_log = logging.getLogger("chokepoint.instrument")

METER_NAME = "chokepoint.instrument"
PROBES_METER_NAME = "chokepoint.instrument.probes"
UPSTREAM_SCOPE_PREFIX = "opentelemetry.instrumentation."


class ChokepointMeterProvider(MeterProvider):
    """The SDK meter provider, minus the upstream instrumentors' own meters.

    Some upstream instrumentors (the DB-API family) take no ``meter_provider`` argument and
    record per-query histograms on the global provider; chokepoint records the same
    latencies itself from spans, so meters of ``opentelemetry.instrumentation.*`` scopes
    are no-ops (no double counting, no per-call cost).
    """

    def get_meter(self, name, version=None, schema_url=None, attributes=None):
        if name and name.startswith(UPSTREAM_SCOPE_PREFIX):
            return NoOpMeter(name, version=version, schema_url=schema_url)
        return super().get_meter(name, version, schema_url, attributes)


class Agent:
    """One configured agent: its providers, processor, probes and patches."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        span_exporter: SpanExporter | None = None,
        metric_reader: MetricReader | None = None,
    ):
        self.config = config
        resource = Resource.create({"service.name": config.service_name})
        if metric_reader is None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            metric_reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=config.metrics_url, timeout=config.export_timeout_s),
                export_interval_millis=config.metric_export_interval_ms,
            )
        if span_exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter(endpoint=config.traces_url, timeout=config.export_timeout_s)
        self.metric_reader = metric_reader
        exclude_own_pools(metric_reader, span_exporter)  # the exporters' HTTP pools are the agent's, not the app's
        reinit_metric_export_after_fork(metric_reader)  # a forked worker exports on its own
        self.meter_provider = ChokepointMeterProvider(
            metric_readers=[metric_reader],
            resource=resource,
            exemplar_filter=AlwaysOffExemplarFilter(),  # exemplars cost ~1/3 of each record()
            views=[View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())],
        )
        self.instruments = AgentInstruments(self.meter_provider.get_meter(METER_NAME))
        # the per-request instruments aggregate outside the SDK and join each collection
        self.instruments.lean.attach(self.meter_provider, [metric_reader], resource)
        self.processor = KeepSlowTracesProcessor(config, self.instruments, span_exporter)
        # lean spans for the processor alone (CHOKEPOINT_SPANS=sdk: the SDK's; see lean_spans)
        self.tracer_provider = LeanTracerProvider(resource=resource, sampler=ALWAYS_ON, lean=config.spans == "lean")
        self.tracer_provider.add_span_processor(self.processor)
        self.plan = make_plan(config)
        self.probes: list = []
        self._undo: list[Callable[[], None]] = []
        self._extras_installed = False

    def set_global(self) -> None:
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        if trace.get_tracer_provider() is not self.tracer_provider:
            _log.warning("chokepoint: a tracer provider was already set; chokepoint's is not the global one")

    def install_extras(self) -> None:
        """chokepoint's own integrations (the plan's), the fix-ups, client flags and probes (once).

        The own integrations go first: the client flags wrap whatever makes the client spans."""
        if self._extras_installed:
            return
        self._extras_installed = True
        self._undo.append(install_visible_warnings())  # the agent's warnings reach stderr even when only the OTel log bridge listens
        from chokepoint.instrument.distro import ChokepointDistro

        self._undo.extend(ChokepointDistro().take_undo())  # the upstream instrumentors and their fix-up integrations
        for installer in self.own_integrations():
            try:
                undo = installer()
            except Exception:  # a patch that fails to install is skipped; the app runs
                _log.warning("chokepoint: %s failed; continuing without it", getattr(installer, "__name__", "patch"), exc_info=True)
                undo = None
            if undo is not None:
                self._undo.append(undo)
        self._undo.extend(self.late_fixups())
        self._undo.extend(install_client_flags(self.instruments, self.config))
        self.probes = install_probes(self.meter_provider.get_meter(PROBES_METER_NAME), self.config.probes, self.instruments.lean)
        self._undo.append(self._uninstall_probes)  # in install order with the rest: later patches wrap the probes'
        self._undo.append(install_coverage(self))  # blind spots: libraries in use whose integration produced nothing
        if self.config.gc_freeze:  # CHOKEPOINT_GC_FREEZE: full collections skip everything set up so far
            gc.collect()  # set-up garbage is freed, not frozen
            gc.freeze()

    def own_integrations(self) -> list[Callable[[], Callable[[], None] | None]]:
        """The installers of chokepoint's own integrations the plan chose (each returns its undo)."""
        return [functools.partial(self._install_integration, cls()) for cls in OWN_INTEGRATIONS if cls.wanted(self.plan)]

    def late_fixups(self) -> list[Callable[[], None]]:
        """The plan's fix-ups over upstream instrumentors an own integration turned on itself
        (SQLAlchemy past the instrumentor's declared range), which the distro had none to follow;
        each installs only if its upstream instrumentor is active.  Their undo callables."""
        undo = []
        for cls in FIXUPS:
            fixup = cls()
            if cls.runs_upstream() or fixup.is_instrumented_by_opentelemetry or not cls.wanted(self.plan):
                continue
            fixup.instrument(config=self.config, skip_dep_check=True)
            undo.append(fixup.uninstrument)
        return undo

    def _install_integration(self, integration) -> Callable[[], None] | None:
        integration.instrument(tracer_provider=self.tracer_provider, instruments=self.instruments, config=self.config, skip_dep_check=True)
        return integration.uninstrument if integration.installed else None

    def force_flush(self, timeout_s: float = 10.0) -> None:
        self.tracer_provider.force_flush(int(timeout_s * 1000))
        self.meter_provider.force_flush(int(timeout_s * 1000))

    def _uninstall_probes(self) -> None:
        for probe in self.probes:
            try:
                probe.uninstall()
            except Exception:
                _log.debug("chokepoint: probe %s uninstall failed", getattr(probe, "name", probe), exc_info=True)
        self.probes = []

    def shutdown(self) -> None:
        """Revert every patch, newest first (probes included), then shut the providers down."""
        undo_all, self._undo = self._undo, []
        for undo in reversed(undo_all):
            try:
                undo()
            except Exception:
                _log.debug("chokepoint: undoing a patch failed", exc_info=True)
        self._uninstall_probes()  # probes installed without install_extras (none today): still removed
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def exclude_own_pools(*clients) -> None:
    """The client-pool probes skip these clients' pools (``probes.client_pools.exclude_own``); never raises."""
    try:
        from chokepoint.instrument.probes.client_pools import exclude_own
    except ImportError:
        return
    exclude_own(*clients)


def install_probes(meter, enabled: frozenset[str] | None, lean=None) -> list:
    """``chokepoint.instrument.probes.install_all`` if present; never raises.

    ``lean``: the agent's :class:`~chokepoint.instrument.lean_metrics.LeanMetrics`, for
    the probes' hot-path histograms and counters.
    """
    if enabled is not None and not enabled:
        return []
    try:
        from chokepoint.instrument.probes import install_all
    except ImportError:
        _log.debug("chokepoint: probes package not available")
        return []
    try:
        wanted = set(enabled) if enabled is not None else None
        if lean is not None:
            return list(install_all(meter, enabled=wanted, lean=lean))
        return list(install_all(meter, enabled=wanted))
    except Exception:
        _log.warning("chokepoint: installing probes failed; continuing without them", exc_info=True)
        return []


_agent: Agent | None = None
_lock = threading.Lock()


def current_agent() -> Agent | None:
    return _agent


def start(
    config: AgentConfig | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    set_global: bool = True,
) -> Agent | None:
    """Create the agent's providers (once per process); the configurator entry point calls this."""
    global _agent
    with _lock:
        if _agent is not None:
            return _agent
        config = config or AgentConfig.from_env()
        for problem in config.problems:
            _log.warning("chokepoint: %s", problem)
        if not config.enabled:
            return None
        agent = Agent(config, span_exporter=span_exporter, metric_reader=metric_reader)
        log_plan(agent.plan)
        if set_global:
            agent.set_global()
        _agent = agent
        return agent


def instrument(
    config: AgentConfig | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    set_global: bool = True,
    libraries: bool = True,
) -> Agent | None:
    """Set up the whole agent from code (module docstring).  Idempotent, never raises."""
    try:
        from chokepoint.instrument.distro import apply_environment_defaults

        apply_environment_defaults()
        agent = start(config, span_exporter=span_exporter, metric_reader=metric_reader, set_global=set_global)
        if agent is None:
            return None
        if libraries:
            instrument_libraries(agent.plan)
        agent.install_extras()
        return agent
    except Exception:
        _log.exception("chokepoint: set-up failed; the app runs uninstrumented")
        return _agent


def instrument_libraries(plan=None) -> None:
    """Run every installed ``opentelemetry_instrumentor`` through chokepoint's distro (``plan``: the agent's)."""
    from chokepoint.instrument.compat import load_instrumentors
    from chokepoint.instrument.distro import ChokepointDistro

    distro = ChokepointDistro()
    distro.plan = plan
    try:
        load_instrumentors(distro)
    finally:
        distro.plan = None  # the next loader (another agent, a test) makes its own


def post_instrument() -> None:
    """``opentelemetry_post_instrument`` entry point: client flags and probes."""
    agent = _agent
    if agent is not None:
        try:
            agent.install_extras()
        except Exception:
            _log.warning("chokepoint: installing client flags/probes failed", exc_info=True)


def _reset_for_tests() -> None:
    """Shut down and forget the process agent (tests only)."""
    global _agent
    with _lock:
        if _agent is not None:
            _agent.shutdown()
        _agent = None


class ChokepointConfigurator(BaseConfigurator):
    """``opentelemetry_configurator`` entry point: ``opentelemetry-instrument`` starts the agent here."""

    def _configure(self, **kwargs):
        try:
            start()
        except Exception:
            _log.exception("chokepoint: set-up failed; the app runs uninstrumented")
