"""The one place that touches private names of the OpenTelemetry API, SDK and instrumentors.

Everything else in the agent imports these from here, never ``opentelemetry.*._name``.
Each name is looked up once, at import; when an OpenTelemetry release lacks it, a
fallback with the same behaviour takes its place and the name is listed in
:data:`MISSING` (logged once at debug level), so a newer or older release degrades one
feature instead of failing to import.  The supported OpenTelemetry range is the one in
``instrument/pyproject.toml``; the agent's tests run at both of its ends
(``constraints-oldest.txt``, ``constraints.txt``) and assert that nothing is missing there.

Contents:

- trace flags: :data:`RANDOM_TRACE_ID_FLAG`;
- context keys: :data:`SUPPRESS_INSTRUMENTATION_KEY`, :data:`SUPPRESS_HTTP_INSTRUMENTATION_KEY`,
  :data:`SPAN_KEY` (the current span's key in a ``Context``);
- attributes: :func:`clean_attribute_value` (the SDK's cleaning rules),
  :func:`is_valid_link`, :func:`sdk_span_attributes`, :func:`attributes_dict`,
  :func:`set_link_attributes`;
- tracers and providers: :func:`span_limits`, :func:`tracer_enabled`,
  :func:`instrumentation_scope`, :data:`agnosticcontextmanager`;
- metric readers: :func:`reader_collect`, :func:`set_reader_collect`,
  :func:`meter_provider_resource`, :func:`reset_reader_export_in_child`, :func:`exporter_connections`;
- auto-instrumentation: :class:`BaseConfigurator`, :func:`load_instrumentors`,
  :func:`http_schema_url`;
- instrumentor internals: :func:`kafka_headers_getter` (kafka-python, aiokafka),
  :func:`confluent_kafka_consume_span` (the confluent-kafka instrumentor's span factory);
- urllib3: :func:`urllib3_default_timeout`, :func:`urllib3_read_timeout`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points

from opentelemetry.trace import TraceFlags

_log = logging.getLogger("chokepoint.instrument")

MISSING: list[str] = []
"""The private names this OpenTelemetry installation lacks (their fallbacks are in use)."""


def _lookup(module: str, name: str, fallback=None):
    """``module.name`` if it exists, else ``fallback`` (and ``module.name`` goes to :data:`MISSING`)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        MISSING.append(f"{module}.{name}")
        _log.debug("chokepoint: %s.%s is absent; using chokepoint's fallback", module, name)
        return fallback


def _lookup_quiet(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# -- context keys ---------------------------------------------------------------------------

SUPPRESS_INSTRUMENTATION_KEY = _lookup("opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
SUPPRESS_HTTP_INSTRUMENTATION_KEY = _lookup("opentelemetry.context", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation")


def _span_key_of_context() -> str:
    """The key ``trace.set_span_in_context`` stores the span under, found through the public API."""
    from opentelemetry import trace
    from opentelemetry.context import Context

    return next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))


SPAN_KEY = _lookup("opentelemetry.trace.propagation", "_SPAN_KEY") or _span_key_of_context()

RANDOM_TRACE_ID_FLAG: int = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
"""W3C trace-context level 2's random-trace-id flag (``0`` before the API knew it, 1.42)."""

# -- attributes -----------------------------------------------------------------------------

_PLAIN = (type(None), bool, int, float, bytes)


def _clean_attribute_value_fallback(value, max_value_len: int | None):
    """The SDK's rules: plain values kept, strings truncated, sequences to tuples, mappings
    copied with non-empty string keys, anything else ``str()``."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return value if max_value_len is None else value[:max_value_len]
    if isinstance(value, Sequence):
        return tuple(_clean_attribute_value_fallback(v, max_value_len) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _clean_attribute_value_fallback(v, max_value_len) for k, v in value.items() if k}
    try:
        return str(value)
    except Exception:
        return None


def _clean_attribute_values_per_key(clean_one: Callable) -> Callable:
    """``clean_attribute_value`` over the SDK's older per-key ``_clean_attribute(key, value, max_len)``
    (up to 1.44): a mapping loses the pairs it rejects, a single value is cleaned as under a valid key."""

    def clean(value, max_value_len):
        if isinstance(value, Mapping):
            cleaned = {}
            for key, item in value.items():
                item = clean_one(key, item, max_value_len)
                if item is not None:
                    cleaned[key] = item
            return cleaned
        return clean_one("value", value, max_value_len)

    return clean


def _attribute_cleaner() -> Callable:
    per_key = _lookup_quiet("opentelemetry.attributes", "_clean_attribute")
    if per_key is not None:  # SDK up to 1.44: spans clean each pair with _clean_attribute
        return _clean_attribute_values_per_key(per_key)
    return _lookup("opentelemetry.attributes", "_clean_attribute_value", _clean_attribute_value_fallback)


clean_attribute_value: Callable = _attribute_cleaner()
"""Clean one attribute value, or a mapping of them, as this SDK cleans a span's attributes."""


def _is_valid_link_fallback(context, attributes) -> bool:
    return bool(context and (context.is_valid or (attributes or context.trace_state)))


is_valid_link: Callable = _lookup("opentelemetry.sdk.trace", "_is_valid_link", _is_valid_link_fallback)


def sdk_span_attributes(span):
    """An SDK span's attribute mapping without the read-only proxy ``span.attributes`` builds."""
    attributes = getattr(span, "_attributes", _ABSENT)
    return span.attributes if attributes is _ABSENT else attributes


def attributes_dict(attributes):
    """The plain dict inside a ``BoundedAttributes`` (``attributes`` itself otherwise)."""
    return getattr(attributes, "_dict", attributes)


def set_link_attributes(link, attributes) -> None:
    """Replace a ``Link``'s attributes (the SDK bounds them this way when a span starts)."""
    link._attributes = attributes


_ABSENT = object()

# -- tracers and providers ------------------------------------------------------------------


def span_limits(provider):
    """The provider's ``SpanLimits`` (the environment's defaults if it keeps none)."""
    limits = getattr(provider, "_span_limits", None)
    if limits is None:
        from opentelemetry.sdk.trace import SpanLimits

        limits = SpanLimits()
    return limits


def tracer_enabled(tracer) -> bool:
    """Whether a tracer configurator left the SDK tracer enabled (always, before configurators)."""
    config = getattr(tracer, "_tracer_config", None)
    return True if config is None else bool(getattr(config, "is_enabled", True))


def instrumentation_scope(tracer):
    """The SDK tracer's ``InstrumentationScope``."""
    scope = getattr(tracer, "_instrumentation_scope", None)
    if scope is None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        scope = InstrumentationScope(getattr(tracer, "name", "") or "")
    return scope


agnosticcontextmanager = _lookup("opentelemetry.util._decorator", "_agnosticcontextmanager", contextlib.contextmanager)

# -- metric readers -------------------------------------------------------------------------


def reader_collect(reader):
    """The callable a ``MetricReader`` collects with (``None`` before it is registered, or
    when this SDK keeps it elsewhere)."""
    return getattr(reader, "_collect", None)


def set_reader_collect(reader, collect) -> bool:
    """Make ``reader`` collect through ``collect(reader, timeout_millis=...)``; False if this SDK cannot."""
    setter = getattr(reader, "_set_collect_callback", None)
    if setter is None:
        return False
    setter(collect)
    return True


def meter_provider_resource(meter_provider):
    """The meter provider's current ``Resource`` (the SDK renews it in a forked child), or ``None``."""
    return getattr(getattr(meter_provider, "_sdk_config", None), "resource", None)


def reset_reader_export_in_child(reader) -> bool:
    """In a forked child: a new export lock for a ``PeriodicExportingMetricReader`` (the
    parent's may be held by its export thread, which the child does not have) and its
    OTLP/HTTP exporter's pooled connections closed (the child's copies of the parent's
    sockets).  False when this SDK keeps either somewhere else."""
    import threading

    found = hasattr(reader, "_export_lock")
    if found:
        reader._export_lock = threading.Lock()
    pooled = exporter_connections(getattr(reader, "_exporter", None))
    if hasattr(pooled, "adapters"):  # a requests.Session
        for adapter in pooled.adapters.values():
            adapter.close()
    elif hasattr(pooled, "clear"):  # a urllib3 PoolManager
        pooled.clear()
    return found and pooled is not None


def exporter_connections(exporter):
    """An OTLP/HTTP exporter's pooled connections: its ``requests.Session`` or urllib3
    ``PoolManager``, kept by its transport (``_client._transport._session`` / ``._pool`` from
    1.45 on, the transport chosen by the installed SDK) or by the exporter itself (older
    releases' ``_session``); ``None`` when neither is found."""
    transport = getattr(getattr(exporter, "_client", None), "_transport", None)
    for holder in (transport, exporter):
        for attr in ("_session", "_pool"):
            pooled = getattr(holder, attr, None)
            if pooled is not None:
                return pooled
    return None


# -- auto-instrumentation -------------------------------------------------------------------


class _BaseConfiguratorFallback:
    """What the loader calls on an ``opentelemetry_configurator`` entry point."""

    def configure(self, **kwargs):
        self._configure(**kwargs)

    def _configure(self, **kwargs):
        raise NotImplementedError


BaseConfigurator = _lookup("opentelemetry.sdk._configuration", "_BaseConfigurator", _BaseConfiguratorFallback)


def load_instrumentors(distro) -> None:
    """Every ``opentelemetry_instrumentor`` entry point through ``distro``, as the loader of
    ``opentelemetry-instrument`` does (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` honoured)."""
    upstream = _lookup_quiet("opentelemetry.instrumentation.auto_instrumentation._load", "_load_instrumentors")
    if upstream is not None:
        upstream(distro)
        return
    disabled = {name.strip() for name in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",") if name.strip()}
    for entry_point in entry_points(group="opentelemetry_instrumentor"):
        if entry_point.name in disabled:
            continue
        try:
            distro.load_instrumentor(entry_point, raise_exception_on_conflict=True)
        except Exception:
            _log.debug("chokepoint: instrumenting %s failed", entry_point.name, exc_info=True)


def http_schema_url() -> str | None:
    """The schema URL upstream's HTTP instrumentors give their tracers (``None`` if unknown)."""
    get_schema_url = _lookup_quiet("opentelemetry.instrumentation._semconv", "_get_schema_url")
    mode = _lookup_quiet("opentelemetry.instrumentation._semconv", "_StabilityMode")
    if get_schema_url is None or mode is None:
        return None
    return get_schema_url(mode.HTTP)


# -- instrumentor internals -----------------------------------------------------------------


class _KafkaHeadersGetter:
    """A ``Getter`` over a Kafka record's headers: ``(key, bytes)`` pairs."""

    def get(self, carrier, key):
        values = [value.decode() if isinstance(value, bytes) else value for name, value in carrier or () if name == key]
        return values or None

    def keys(self, carrier):
        return [name for name, _ in carrier or ()]


def kafka_headers_getter(library: str):
    """The getter upstream's ``library`` instrumentor (``kafka`` or ``aiokafka``) extracts context with."""
    name = {"kafka": "_kafka_getter", "aiokafka": "_aiokafka_getter"}[library]
    return _lookup_quiet(f"opentelemetry.instrumentation.{library}.utils", name) or _KafkaHeadersGetter()


def confluent_kafka_consume_span():
    """``(module, span factory, getter, links_of)`` of the confluent-kafka instrumentor, or ``None``.

    The factory is ``module._create_new_consume_span(instance, tracer, records)``, which
    stores the span on ``instance._current_consume_span``.
    """
    try:
        import opentelemetry.instrumentation.confluent_kafka as module
        from opentelemetry.instrumentation.confluent_kafka import utils
    except ImportError:
        return None
    parts = (
        getattr(module, "_create_new_consume_span", None),
        getattr(utils, "_kafka_getter", None),
        getattr(utils, "_get_links_from_records", None),
    )
    return None if None in parts else (module, *parts)


def set_confluent_consume_span(module, factory) -> None:
    """Install ``factory`` as the confluent-kafka instrumentor's consume-span factory."""
    module._create_new_consume_span = factory


def set_current_consume_span(instance, span) -> None:
    """The span the confluent-kafka instrumentor's consumer ends on its next poll."""
    instance._current_consume_span = span


# -- urllib3 --------------------------------------------------------------------------------


def urllib3_default_timeout():
    """urllib3's "no timeout given" sentinel (a fresh object, equal to nothing, if it has none)."""
    return _lookup_quiet("urllib3.util.timeout", "_DEFAULT_TIMEOUT") or _NO_SENTINEL


def urllib3_read_timeout(timeout):
    """A ``urllib3.Timeout``'s read timeout as given (the sentinel when not given)."""
    return timeout._read if hasattr(timeout, "_read") else timeout.read_timeout


_NO_SENTINEL = object()

PRIVATE_NAMES: tuple[tuple[str, str], ...] = (  # "a|b": one of them, by release
    ("opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY"),
    ("opentelemetry.context", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY"),
    ("opentelemetry.trace.propagation", "_SPAN_KEY"),
    ("opentelemetry.attributes", "_clean_attribute_value|_clean_attribute"),
    ("opentelemetry.sdk.trace", "_is_valid_link"),
    ("opentelemetry.util._decorator", "_agnosticcontextmanager"),
    ("opentelemetry.sdk._configuration", "_BaseConfigurator"),
    ("opentelemetry.instrumentation.auto_instrumentation._load", "_load_instrumentors"),
    ("opentelemetry.instrumentation._semconv", "_get_schema_url"),
    ("opentelemetry.instrumentation._semconv", "_StabilityMode"),
)
"""Every module-level private name used here, for the tests at both ends of the range
(attribute names on objects are checked by the tests of their helpers)."""
