"""A leaner hot path for the upstream SQLAlchemy instrumentor: same spans, same attributes.

Why: in a profile of the overhead benchmark (docs/BENCHMARKS.md), the upstream
``EngineTracer`` spent more on each statement than the SDK span it makes — it rebuilds
the connection attributes from the engine URL, re-derives the operation name, sets five
attributes one call at a time and makes the span current (a context attach/detach) just
to set them; ``Engine.connect`` went through two generator-based context managers; and
the pool listeners fed a connection-usage counter that chokepoint's meter provider
makes a no-op (the ``sqlalchemy_pool`` probe reports the pool).

Usage (the agent calls it after the instrumentors are loaded, before engines exist)::

    undo = install_lean_sqlalchemy()

What changes, per ``EngineTracer`` (one per engine):

- ``before_cursor_execute``: the span name and attribute dict are computed once per
  (statement, database name) and cached (at most ``MAX_CACHED_STATEMENTS`` per engine),
  then the span starts with them in one call.  Names, attributes and their order, span
  kind and parent are those upstream produces.  On PostgreSQL the database name
  (``connection.info.dbname``, a libpq call, ~2 µs) is read once per DB-API connection;
  whether instrumentation is suppressed is read straight from the context variable.
  Engines whose URL has no host (the attributes then come from the cursor) and engines
  with the SQL commenter on keep the upstream path;
- ``Engine.connect``: the ``connect`` span is current around the call as upstream makes
  it (exception recorded and status set the same way), without the context-manager
  layers;
- the four pool listeners are not registered when their counter is a no-op.

``CHOKEPOINT_SQLALCHEMY=upstream`` leaves the upstream instrumentor untouched.  If the
upstream internals this relies on are missing (another version), nothing is patched and
a debug line says so.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

_log = logging.getLogger(__name__)

MAX_CACHED_STATEMENTS = 2000
_POOL_EVENTS = frozenset({"connect", "close", "checkin", "checkout"})
_NEEDED = (
    "EngineTracer",
    "_get_attributes_from_url",
    "_get_db_name_from_cursor_or_conn",
    "_set_db_statement",
    "_set_db_system",
    "_set_db_operation",
    "_normalize_vendor",
    "is_instrumentation_enabled",
)


def install_lean_sqlalchemy() -> Callable[[], None] | None:
    try:
        from opentelemetry.instrumentation.sqlalchemy import engine as upstream
    except ImportError:
        return None
    missing = [name for name in _NEEDED if not hasattr(upstream, name)]
    if missing:
        _log.debug("chokepoint: SQLAlchemy instrumentor internals changed (%s missing); lean path not installed", ", ".join(missing))
        return None
    tracer_cls = upstream.EngineTracer
    original_before = tracer_cls.__dict__.get("_before_cur_exec")
    original_register = tracer_cls.__dict__.get("_register_event_listener")
    if original_before is None or original_register is None or getattr(original_before, "_chokepoint", False):
        return None
    undo: list[Callable[[], None]] = []

    tracer_cls._before_cur_exec = _make_before_cur_exec(upstream, original_before)
    undo.append(lambda: setattr(tracer_cls, "_before_cur_exec", original_before))
    tracer_cls._register_event_listener = _make_register(original_register)
    undo.append(lambda: setattr(tracer_cls, "_register_event_listener", original_register))
    connect_undo = _install_lean_connect(upstream)
    if connect_undo is not None:
        undo.append(connect_undo)

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all


def _make_before_cur_exec(upstream, original):
    get_url_attributes = upstream._get_attributes_from_url
    get_db_name = upstream._get_db_name_from_cursor_or_conn
    set_statement, set_system, set_operation = upstream._set_db_statement, upstream._set_db_system, upstream._set_db_operation
    instrumentation_enabled = _lean_instrumentation_enabled(upstream.is_instrumentation_enabled)
    from opentelemetry.trace import SpanKind

    client = SpanKind.CLIENT

    def _before_cur_exec(self, conn, cursor, statement, params, context, _executemany):
        if self.enable_commenter:
            return original(self, conn, cursor, statement, params, context, _executemany)
        if not instrumentation_enabled():
            return statement, params
        url = conn.engine.url
        cache = self.__dict__.get("_chokepoint_cache")
        if cache is None or cache[0] is not url:
            attributes, found = get_url_attributes(url, self._sem_conv_opt_in_mode_db, self._sem_conv_opt_in_mode_http)
            db_names = {} if "postgres" in (self.vendor or "").lower() else None
            cache = self._chokepoint_cache = (url, attributes if found else None, {}, db_names)
        url_attributes, statements, db_names = cache[1], cache[2], cache[3]
        if url_attributes is None:  # no host in the URL: upstream reads the cursor's connection
            return original(self, conn, cursor, statement, params, context, _executemany)
        if db_names is None:
            db_name = get_db_name(self.vendor, conn, cursor)
        else:  # PostgreSQL: the database a DB-API connection is on never changes; asking libpq costs ~1 µs
            dbapi_connection = getattr(cursor, "connection", None)
            known = db_names.get(id(dbapi_connection))
            if known is not None and known[0]() is dbapi_connection:
                db_name = known[1]
            else:
                db_name = get_db_name(self.vendor, conn, cursor)
                _remember_db_name(db_names, dbapi_connection, db_name)
        entry = statements.get((statement, db_name))
        if entry is None:
            name = self._operation_name(db_name, statement)
            attributes = dict(url_attributes)
            set_statement(attributes, statement, self._sem_conv_opt_in_mode_db)
            set_system(attributes, self.vendor, self._sem_conv_opt_in_mode_db)
            set_operation(attributes, name, self._sem_conv_opt_in_mode_db)
            entry = (name, attributes)
            if len(statements) < MAX_CACHED_STATEMENTS:
                statements[(statement, db_name)] = entry
        context._otel_span = self.tracer.start_span(entry[0], kind=client, attributes=entry[1])
        return statement, params

    _before_cur_exec._chokepoint = True
    _before_cur_exec.__wrapped__ = original
    return _before_cur_exec


def _remember_db_name(db_names: dict, dbapi_connection, db_name) -> None:
    """Cache ``db_name`` for ``dbapi_connection`` until it is garbage (weakly; psycopg2's
    connections are not weak-referenceable and are looked up every time)."""
    key = id(dbapi_connection)

    def forget(ref, key=key) -> None:
        entry = db_names.get(key)
        if entry is not None and entry[0] is ref:
            db_names.pop(key, None)

    try:
        ref = weakref.ref(dbapi_connection, forget)
    except TypeError:
        return
    if len(db_names) >= MAX_CACHED_STATEMENTS:
        db_names.clear()
    db_names[key] = (ref, db_name)


def _make_register(original):
    from opentelemetry.metrics import NoOpUpDownCounter

    underlying = original.__func__

    def _register_event_listener(cls, target, identifier, func, *args, **kw):
        owner = getattr(func, "__self__", None)
        if identifier in _POOL_EVENTS and isinstance(getattr(owner, "connections_usage", None), NoOpUpDownCounter):
            return None  # the listener would only feed a no-op counter
        return underlying(cls, target, identifier, func, *args, **kw)

    return classmethod(_register_event_listener)


def _install_lean_connect(upstream) -> Callable[[], None] | None:
    """Swap the ``Engine.connect`` wrapper for a lean one with the same tracer; undo callable."""
    try:
        import wrapt
        from sqlalchemy.engine.base import Engine
    except ImportError:
        return None
    current = Engine.__dict__.get("connect")
    wrapper = getattr(current, "_self_wrapper", None)
    original = getattr(current, "__wrapped__", None)
    tracer = _closure_value(wrapper, "tracer")
    if tracer is None or original is None or getattr(wrapper, "_chokepoint", False):
        _log.debug("chokepoint: Engine.connect is not the upstream wrapper; lean connect not installed")
        return None
    from opentelemetry import context as context_api
    from opentelemetry import trace
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability, _OpenTelemetryStabilitySignalType
    from opentelemetry.trace import SpanKind, Status, StatusCode

    stability = _OpenTelemetrySemanticConventionStability
    get_url_attributes, set_system, normalize_vendor = upstream._get_attributes_from_url, upstream._set_db_system, upstream._normalize_vendor
    instrumentation_enabled = _lean_instrumentation_enabled(upstream.is_instrumentation_enabled)
    client = SpanKind.CLIENT
    cache: dict = {}

    def connect_attributes(engine) -> dict:
        url = engine.url
        cached = cache.get(id(url))  # by identity: hashing a URL renders it as a string
        if cached is not None and cached[0] is url and cached[1] == engine.name:
            return cached[2]
        stability._initialize()
        mode_db = stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.DATABASE)
        mode_http = stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.HTTP)
        attributes, _ = get_url_attributes(url, mode_db, mode_http)
        set_system(attributes, normalize_vendor(engine.name), mode_db)
        if len(cache) >= 100:
            cache.clear()
        cache[id(url)] = (url, engine.name, attributes)
        return attributes

    def _lean_connect(func, engine, args, kwargs):
        if not instrumentation_enabled():
            return func(*args, **kwargs)
        span = tracer.start_span("connect", kind=client, attributes=connect_attributes(engine))
        token = context_api.attach(trace.set_span_in_context(span))
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # as trace.use_span records it (BaseException passes through)
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(status_code=StatusCode.ERROR, description=f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            context_api.detach(token)
            span.end()

    _lean_connect._chokepoint = True
    Engine.connect = wrapt.FunctionWrapper(original, _lean_connect)

    def undo() -> None:
        if Engine.__dict__.get("connect") is not current:
            Engine.connect = current

    return undo


_ENABLED_NAMES = ("context", "get_value", "_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_INSTRUMENTATION_KEY_PLAIN")


def _lean_instrumentation_enabled(upstream_enabled: Callable[[], bool]) -> Callable[[], bool]:
    """``is_instrumentation_enabled()`` reading the current context's two suppression keys
    straight from the context variable (upstream: five Python calls, ~1.5 µs, on every
    statement); the upstream function itself if its code or the runtime context differ."""
    try:
        from opentelemetry import context as context_module
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.instrumentation import utils
    except ImportError:
        return upstream_enabled
    runtime = getattr(context_module, "_RUNTIME_CONTEXT", None)
    if (
        upstream_enabled is not getattr(utils, "is_instrumentation_enabled", None)
        or upstream_enabled.__code__.co_names != _ENABLED_NAMES
        or type(runtime) is not ContextVarsRuntimeContext
    ):
        return upstream_enabled
    current_context = runtime._current_context
    key, plain_key = context_module._SUPPRESS_INSTRUMENTATION_KEY, utils._SUPPRESS_INSTRUMENTATION_KEY_PLAIN

    def instrumentation_enabled() -> bool:
        if context_module._RUNTIME_CONTEXT is not runtime:
            return upstream_enabled()
        current = current_context.get()
        return not (current.get(key) or current.get(plain_key))

    return instrumentation_enabled


def _closure_value(function, name: str):
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or not closure or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:  # empty cell
        return None
