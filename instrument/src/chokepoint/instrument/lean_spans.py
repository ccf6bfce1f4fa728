"""Lean spans: the agent's tracer without the SDK's per-span machinery.

Usage (the agent wires this; ``CHOKEPOINT_SPANS=sdk`` turns it off)::

    provider = LeanTracerProvider(resource=resource, sampler=ALWAYS_ON)
    provider.add_span_processor(keep_slow_traces_processor)   # marked ``lean_spans_ok``
    tracer = provider.get_tracer("my.library")                 # a LeanTracer
    with tracer.start_as_current_span("work") as span:         # a LeanSpan
        span.set_attribute("k", "v")

Why: chokepoint needs every span only to record its metrics and the request's breakdown
(name, kind, parent, times, status, attributes); ~90 % of traces are then dropped.  The
SDK builds each span for export anyway: sampler call, ``BoundedAttributes`` with a lock
per attribute set, ``BoundedList`` for events and links, a multi-processor fan-out and,
at ``end()``, a full ``ReadableSpan`` copy.  A :class:`LeanSpan` is one ``__slots__``
object with a plain attribute dict, handed to the chokepoint processor as it is; kept
traces become SDK ``ReadableSpan`` objects on the export thread
(:func:`chokepoint.instrument.sampling.sanitized_copy`).

Same behaviour where an instrumentor or the exporter can notice:

- trace and span ids from the provider's id generator; the parent from the context as
  the SDK takes it (an invalid or absent parent starts a new trace; a remote parent's
  trace id, trace state and random-trace-id flag are kept); the sampled flag, as the
  always-on sampler gives;
- attribute values are cleaned when set, with the SDK's rules (``compat.clean_attribute_value``:
  lists become tuples, unknown types ``str()`` or ``None``, invalid keys dropped,
  ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` truncation); the SDK's span limits (128
  attributes: the oldest is dropped; 128 events; 128 links) from the provider's
  ``SpanLimits``; event and link attributes are ``BoundedAttributes`` as the SDK makes them;
- a span ends once (a second ``end()`` is logged and ignored) and nothing changes it
  after that; ``set_status``: ``UNSET`` is ignored, ``OK`` is final, a description only
  with ``ERROR``; ``record_exception`` adds the SDK's ``exception`` event
  (type/message/stacktrace/escaped); ``with span:`` and ``use_span`` record the
  exception and set ``ERROR`` as the SDK's span does.

No lock: one thread owns a span while it is open (single dict operations are atomic
under the GIL anyway).  The SDK's own span machinery is used instead — spans are the
SDK's exactly as without chokepoint — whenever another span processor is registered on
the provider (a user's exporter, for instance), the sampler is not always-on, a
tracer is disabled by a tracer configurator, or ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``
asks for the SDK's span metrics.

The few SDK internals it needs (the SDK's attribute cleaning, link validation, the
tracer's config and scope, the provider's span limits) come from
:mod:`chokepoint.instrument.compat`.

On the agent's own path a parent ``SpanContext`` is read by tuple index, not through its
properties; with the SDK's own ``RandomIdGenerator`` the ids come from
``random.getrandbits`` called here (the same draws in the same order: trace id, then span
id); ``set_attributes`` with valid keys cleans only the values that need it (a tuple of
plain values, a captured header, is kept as it is).  What lean spans save against the
SDK's: docs/BENCHMARKS.md ("Lean spans"; ``CHOKEPOINT_SPANS=sdk`` switches back for the
comparison).
"""

from __future__ import annotations

import logging
import os
import random
import traceback
from collections.abc import Iterator, Mapping, Sequence
from time import time_ns

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, Tracer, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from chokepoint.instrument import context as request_context
from chokepoint.instrument.compat import (
    RANDOM_TRACE_ID_FLAG,
    SPAN_KEY,
    agnosticcontextmanager,
    clean_attribute_value,
    instrumentation_scope,
    is_valid_link,
    set_link_attributes,
    span_limits,
    tracer_enabled,
)

_log = logging.getLogger("opentelemetry.sdk.trace")  # the SDK's logger: same warnings, same place

EXCEPTION_ESCAPED = "exception.escaped"
_PLAIN_VALUES = frozenset({str, bool, int, float, bytes, type(None)})
_PLAIN_NOT_STR = _PLAIN_VALUES - {str}
_STR_ONLY = frozenset({str})
_UNSET = Status(StatusCode.UNSET)
_OK = StatusCode.OK
_INTERNAL = SpanKind.INTERNAL
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | RANDOM_TRACE_ID_FLAG)
_current_context = otel_context.get_current
_current_request = request_context.current
_RANDOM_TRACE_ID = RANDOM_TRACE_ID_FLAG
_new_tuple = tuple.__new__
_TRACE_ID_MAX = 2**128 - 1
_SPAN_ID_MAX = 2**64 - 1


class _ReadSide:
    """What a lean span and a leaf span answer alike (``context`` and ``_tracer`` are theirs)."""

    __slots__ = ()

    def get_span_context(self) -> SpanContext:
        return self.context

    @property
    def resource(self):
        return self._tracer.sdk_tracer.resource

    @property
    def instrumentation_scope(self):
        return instrumentation_scope(self._tracer.sdk_tracer)

    @property
    def instrumentation_info(self):
        return self._tracer.sdk_tracer.instrumentation_info

    dropped_attributes = 0
    dropped_events = 0
    dropped_links = 0


class LeanSpan(_ReadSide, trace_api.Span):
    """An ``opentelemetry.trace.Span`` that is also what the processor and exporter read.

    Read side (as ``ReadableSpan``): ``name``, ``context``, ``parent``, ``kind``,
    ``attributes`` (a plain dict), ``events``, ``links``, ``status``, ``start_time``,
    ``end_time``, ``resource``, ``instrumentation_scope``.
    """

    __slots__ = (
        "_tracer",
        "attributes",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "record_exception_on_exit",
        "set_status_on_exit",
        "start_time",
        "status",
    )

    def __init__(
        self,
        tracer: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict,
        links,
        start_time: int,
        record_exception: bool,
        set_status_on_exception: bool,
    ):
        self._tracer = tracer
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.events = ()
        self.links = links
        self.status = _UNSET
        self.start_time = start_time
        self.end_time = None
        self.record_exception_on_exit = record_exception
        self.set_status_on_exit = set_status_on_exception

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self.name}", context={self.context})'

    # ------------------------------------------------------------ write side
    def set_attribute(self, key: str, value) -> None:
        if self.end_time is not None:
            _log.warning("Setting attribute on ended span.")
            return
        tracer = self._tracer
        if type(key) is not str or not key:
            _log.warning("invalid key `%s`. must be non-empty string. Dropping key from attributes.", key)
            return
        if type(value) not in tracer.plain_values:
            value = clean_attribute_value(value, tracer.max_value_len)
        _insert(self.attributes, key, value, tracer.max_attributes)

    def set_attributes(self, attributes: Mapping) -> None:
        if self.end_time is not None:
            _log.warning("Setting attribute on ended span.")
            return
        tracer = self._tracer
        plain = tracer.plain_values
        if not (_STR_ONLY.issuperset(map(type, attributes)) and "" not in attributes):
            attributes = clean_attribute_value(attributes, tracer.max_value_len)  # as the SDK's _set_items
        elif not plain.issuperset(map(type, attributes.values())):  # valid keys: only the values need cleaning
            attributes = {key: value if type(value) in plain else _clean_value(value, plain, tracer.max_value_len) for key, value in attributes.items()}
        mine, limit = self.attributes, tracer.max_attributes
        for key, value in attributes.items():
            _insert(mine, key, value, limit)

    def add_event(self, name: str, attributes=None, timestamp: int | None = None) -> None:
        tracer = self._tracer
        bounded = BoundedAttributes(tracer.limits.max_event_attributes, attributes, max_value_len=tracer.limits.max_attribute_length, immutable=True)
        if self.end_time is not None:
            _log.warning("Tried calling %s on an ended span.", "_add_event")
            return
        events = self.events
        if type(events) is tuple:
            events = self.events = []
        if tracer.limits.max_events is not None and len(events) >= tracer.limits.max_events:
            if not tracer.limits.max_events:
                return
            del events[0]
        events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes=None) -> None:
        if not is_valid_link(context, attributes):
            return
        tracer = self._tracer
        bounded = BoundedAttributes(tracer.limits.max_link_attributes, attributes, max_value_len=tracer.limits.max_attribute_length, immutable=True)
        if self.end_time is not None:
            _log.warning("Tried calling %s on an ended span.", "_add_link")
            return
        links = self.links
        if type(links) is tuple:
            links = self.links = list(links)
        if tracer.limits.max_links is not None and len(links) >= tracer.limits.max_links:
            if not tracer.limits.max_links:
                return
            del links[0]
        links.append(Link(context=context, attributes=bounded))

    def update_name(self, name: str) -> None:
        if self.end_time is not None:
            _log.warning("Tried calling %s on an ended span.", "update_name")
            return
        self.name = name

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            _log.warning("Tried calling %s on an ended span.", "set_status")
            return
        current = self.status
        if isinstance(status, Status):
            if current.status_code is _OK or status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _log.warning("Description %s ignored. Use either `Status` or `(StatusCode, Description)`", description)
            self.status = status
        elif isinstance(status, StatusCode):
            if current.status_code is _OK or status is StatusCode.UNSET:
                return
            self.status = Status(status, description)

    def record_exception(self, exception: BaseException, attributes=None, timestamp: int | None = None, escaped: bool = False) -> None:
        stacktrace = "".join(traceback.format_exception(exception))
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        exception_type = f"{module}.{qualname}" if module and module != "builtins" else qualname
        event_attributes = {
            EXCEPTION_TYPE: exception_type,
            EXCEPTION_MESSAGE: str(exception),
            EXCEPTION_STACKTRACE: stacktrace,
            EXCEPTION_ESCAPED: str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event(name="exception", attributes=event_attributes, timestamp=timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            _log.warning("Calling end() on an ended span.")
            return
        self.end_time = end_time if end_time is not None else time_ns()
        self._tracer.processor.on_end(self)

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if exc_val is not None and self.end_time is None:
            if self.record_exception_on_exit:
                self.record_exception(exception=exc_val, escaped=True)
            if self.set_status_on_exit:
                self.set_status(Status(status_code=StatusCode.ERROR, description=f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


def _clean_value(value, plain: frozenset, max_value_len):
    """``clean_attribute_value(value, max_value_len)`` for one value; a tuple of plain
    values (a captured header: ``("123",)``) is clean already and kept as it is."""
    if type(value) is tuple and plain.issuperset(map(type, value)):
        return value
    return clean_attribute_value(value, max_value_len)


def _insert(attributes: dict, key: str, value, limit) -> None:
    """``BoundedAttributes._setitem_locked``: a re-set key becomes the newest; when full, the oldest goes."""
    if key in attributes:
        del attributes[key]
    elif len(attributes) >= limit:
        if not attributes:  # a limit of 0: nothing is kept
            return
        _log.warning("Attributes dict is full. Dropping the oldest key-value pair from attributes to make space for the new key-value pair.")
        del attributes[next(iter(attributes))]
    attributes[key] = value


class LeanTracer(trace_api.Tracer):
    """Makes :class:`LeanSpan` objects while the provider allows it, else the SDK tracer's spans."""

    def __init__(self, provider: LeanTracerProvider, sdk_tracer: Tracer):
        self.provider = provider
        self.sdk_tracer = sdk_tracer
        limits = span_limits(provider)
        self.limits = limits
        self.max_attributes = limits.max_span_attributes if limits.max_span_attributes is not None else float("inf")
        self.max_value_len = limits.max_span_attribute_length
        self.plain_values = _PLAIN_VALUES if self.max_value_len is None else _PLAIN_NOT_STR
        self.id_generator = provider.id_generator
        # the SDK's default generator draws from ``random.getrandbits``: called here directly (looked up per call, as it does)
        self.random_ids = type(provider.id_generator) is RandomIdGenerator
        self.processor = None

    @property
    def resource(self):
        return self.sdk_tracer.resource

    def _attributes(self, attributes) -> dict:
        """A cleaned copy of ``start_span``'s attributes (the caller may reuse its dict)."""
        if (
            _STR_ONLY.issuperset(map(type, attributes))
            and "" not in attributes
            and self.plain_values.issuperset(map(type, attributes.values()))
            and len(attributes) <= self.max_attributes
        ):
            return dict(attributes)
        cleaned: dict = {}
        limit = self.max_attributes
        for key, value in clean_attribute_value(attributes, self.max_value_len).items():
            _insert(cleaned, key, value, limit)
        return cleaned

    def _links(self, links: Sequence[Link]):
        limits = self.limits
        valid = []
        for link in links:
            if link and is_valid_link(link.context, link.attributes):
                set_link_attributes(
                    link, BoundedAttributes(limits.max_link_attributes, link.attributes, max_value_len=limits.max_attribute_length, immutable=True)
                )
                valid.append(link)
        if limits.max_links is not None:
            valid = valid[len(valid) - limits.max_links :] if limits.max_links else []
        return valid

    def start_span(
        self,
        name: str,
        context=None,
        kind: SpanKind = _INTERNAL,
        attributes=None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        processor = self.provider.lean_processor
        if processor is None or not tracer_enabled(self.sdk_tracer):
            return self.sdk_tracer.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)
        current = (context if context is not None else _current_context()).get(SPAN_KEY)  # get_current_span
        parent = current.context if type(current) is LeanSpan else current.get_span_context() if isinstance(current, trace_api.Span) else None
        if type(parent) is SpanContext:  # the tuple's fields (trace id, span id, remote, flags, state, valid), not its properties
            if parent[5]:
                trace_id = parent[0]
                flags = _SAMPLED_RANDOM if parent[3] & _RANDOM_TRACE_ID else _SAMPLED
                state = parent[4]
            else:
                parent = None
        elif parent is not None:
            if not isinstance(parent, SpanContext):
                raise TypeError("parent_span_context must be a SpanContext or None.")  # as the SDK
            if parent.is_valid:
                trace_id = parent.trace_id
                flags = _SAMPLED_RANDOM if parent.trace_flags & _RANDOM_TRACE_ID else _SAMPLED
                state = parent.trace_state
            else:
                parent = None
        if self.random_ids:
            if parent is None:
                trace_id = random.getrandbits(128)
                while trace_id == 0:  # INVALID_TRACE_ID
                    trace_id = random.getrandbits(128)
                flags = _SAMPLED_RANDOM
                state = DEFAULT_TRACE_STATE
            span_id = random.getrandbits(64)
            while span_id == 0:  # INVALID_SPAN_ID
                span_id = random.getrandbits(64)
        else:
            id_generator = self.id_generator
            if parent is None:
                trace_id = id_generator.generate_trace_id()
                flags = _SAMPLED_RANDOM if id_generator.is_trace_id_random() else _SAMPLED
                state = DEFAULT_TRACE_STATE
            span_id = id_generator.generate_span_id()
        valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
        span_context = _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, valid))
        span = LeanSpan(
            self,
            name,
            span_context,
            parent,
            kind,
            self._attributes(attributes) if attributes else {},
            self._links(links) if links else (),
            start_time if start_time is not None else time_ns(),
            record_exception,
            set_status_on_exception,
        )
        self.processor = processor
        processor.on_start(span, parent_context=context)
        return span

    @agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context=None,
        kind: SpanKind = _INTERNAL,
        attributes=None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name=name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=start_time,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )
        with trace_api.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception, set_status_on_exception=set_status_on_exception) as span:
            yield span


class LeafTemplate:
    """What every leaf span of one kind shares (a SQL statement on one database): its name,
    kind and attributes (never changed once made), and the metric values the processor
    derives from them once (``values``, ``None`` until then)."""

    __slots__ = ("attributes", "kind", "name", "query", "values")

    def __init__(self, name: str, attributes: dict, kind: SpanKind = SpanKind.CLIENT):
        self.name = name
        self.attributes = attributes
        self.kind = kind
        self.query = "db.query.text" in attributes or "db.statement" in attributes  # a statement, not a connect
        self.values = None


def leaf_request(tracer, current_context=None):
    """``(parent span context, request context)`` when a span that is never made current and
    never handed to user code (a SQL statement span) can be recorded as a *leaf* of the
    current request instead of a span: ``tracer`` is a :class:`LeanTracer` making lean spans,
    the current span is an open :class:`LeanSpan` of the request's local trace, and the
    request's record has room.  ``None``: make the span as usual."""
    if type(tracer) is not LeanTracer or tracer.provider.lean_processor is None:
        return None
    current = (current_context or _current_context()).get(SPAN_KEY)
    if type(current) is not LeanSpan or current.end_time is not None:
        return None
    request = _current_request()
    if request is None or request.leaves is None:
        return None
    parent = current.context
    if request.trace_id != parent[0] or len(request.leaves) >= request.max_leaves or not tracer_enabled(tracer.sdk_tracer):
        return None
    return parent, request


def add_leaf(request, leaf: tuple) -> None:
    """Append a finished leaf ``(start ns, end ns, template, parent, status or None, tracer)``
    to the record of ``request`` (from :func:`leaf_request`); if the request ended meanwhile (a
    statement still running in another thread), the leaf is made a span instead, so it is
    still measured as one."""
    leaves = request.leaves
    if leaves is not None:
        leaves.append(leaf)
        return
    start, end, template, parent, status, tracer = leaf
    span = tracer.start_span(
        template.name, trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent)), template.kind, template.attributes, start_time=start
    )
    if status is not None:
        span.set_status(status)
    span.end(end)


class LeafSpan(_ReadSide):
    """A finished leaf (:func:`leaf_request`) of a kept trace, read as a ``ReadableSpan`` is
    (the processor, :func:`~chokepoint.instrument.sampling.sanitized_copy`); its span id is
    drawn when it is made, i.e. only for the traces kept."""

    __slots__ = ("_tracer", "attributes", "context", "end_time", "kind", "name", "parent", "start_time", "status")

    events = ()
    links = ()

    def __init__(self, tracer: LeanTracer, template: LeafTemplate, parent: SpanContext, start_time: int, end_time: int, status):
        self._tracer = tracer
        self.name = template.name
        self.kind = template.kind
        self.attributes = template.attributes
        self.parent = parent
        self.start_time = start_time
        self.end_time = end_time
        self.status = status if status is not None else _UNSET
        if tracer.random_ids:
            span_id = random.getrandbits(64)
            while span_id == 0:
                span_id = random.getrandbits(64)
        else:
            span_id = tracer.id_generator.generate_span_id()
        flags = _SAMPLED_RANDOM if parent[3] & _RANDOM_TRACE_ID else _SAMPLED
        self.context = _new_tuple(SpanContext, (parent[0], span_id, False, flags, parent[4], 0 < span_id <= _SPAN_ID_MAX))

    def __repr__(self) -> str:
        return f'LeafSpan(name="{self.name}", context={self.context})'


class LeanTracerProvider(TracerProvider):
    """The SDK's ``TracerProvider`` whose tracers make lean spans for a lone lean-capable processor.

    A processor opts in with a true ``lean_spans_ok`` attribute (it must accept a
    :class:`LeanSpan` in ``on_start``/``on_end``); once any other processor is added,
    every span is the SDK's.  ``lean=False`` (``CHOKEPOINT_SPANS=sdk``) never makes lean spans.
    """

    def __init__(self, *args, lean: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.lean_processor = None
        self._lean_allowed = lean and self.sampler is ALWAYS_ON and not _sdk_span_metrics_wanted()
        self._lean_tracers: dict[int, LeanTracer] = {}

    @property
    def lean(self) -> bool:
        """Whether spans are lean now."""
        return self.lean_processor is not None

    def add_span_processor(self, span_processor) -> None:
        super().add_span_processor(span_processor)
        if self._lean_allowed and getattr(span_processor, "lean_spans_ok", False) and self.lean_processor is None:
            self.lean_processor = span_processor
        else:  # a processor expecting SDK spans: SDK spans for everyone from now on
            self._lean_allowed = False
            self.lean_processor = None

    def get_tracer(self, instrumenting_module_name, instrumenting_library_version=None, schema_url=None, attributes=None):
        tracer = super().get_tracer(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        if not isinstance(tracer, Tracer):  # OTEL_SDK_DISABLED: a no-op tracer
            return tracer
        lean = self._lean_tracers.get(id(tracer))
        if lean is None or lean.sdk_tracer is not tracer:
            lean = self._lean_tracers.setdefault(id(tracer), LeanTracer(self, tracer))
        return lean


def _sdk_span_metrics_wanted() -> bool:
    return os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true"
