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

- statement spans (``CHOKEPOINT_SQLALCHEMY_SPANS=dialect``, the default) start and end
  around the engine dialect's ``do_execute`` / ``do_executemany`` /
  ``do_execute_no_params`` (instance attributes wrapping the bound methods) instead of
  upstream's ``before_cursor_execute`` / ``after_cursor_execute`` / ``handle_error``
  listeners, which are not registered.  SQLAlchemy checks ``_has_events`` at every event
  point of a statement and, with any engine listener, takes the slow path (dispatch
  joins, ``engine_connect``, ``before_execute``/``after_execute`` lists); no-op listeners
  alone cost +60 to +82 µs per request (connect + three statements) and 162 Python
  calls.  Same span name, kind, attributes, parent (the span current at execute time)
  and, on a failure, the status upstream's ``handle_error`` sets (``ERROR``,
  ``str(exception)``; no event), the span covering the cursor call; statements on the
  dialect's own first-connect connection (no engine events) make none, as upstream: the
  connection the dialect's public ``initialize(connection)`` is running on (its
  ``initialize`` is wrapped too; nothing about a ``Connection``'s private attributes is
  read, so every SQLAlchemy from 1.4 to 2.1 behaves the same).  One
  difference, on purpose: a statement the application rewrites in its own
  ``before_cursor_execute`` (``retval=True``) is in the span as executed (upstream's
  listener, registered first, saw it before the rewrite).  An async engine gets two
  tracers (``create_async_engine`` calls the wrapped ``create_engine``); upstream exports
  the last one's span, the dialect makes that one only.  Engines keep the listeners when
  their URL has no host (upstream reads the attributes from the cursor), with the SQL
  commenter on, or when their dialect already has ``do_execute*`` events or wrappers at
  creation (a ``do_execute`` event that runs the statement itself would bypass the
  wrapper).  ``SQLAlchemyInstrumentor().uninstrument()`` unwraps the dialects.
  ``CHOKEPOINT_SQLALCHEMY_SPANS=listeners`` keeps the listener path below.
  Inside a request traced by the agent's lean spans, a statement makes no span object:
  its times, template (name and attributes, cached per statement and database) and
  failure go into the request's record (:func:`chokepoint.instrument.lean_spans.leaf_request`),
  and it becomes that same span only if the request's trace is kept; elsewhere (no
  request, the SDK's spans, a current span of another trace) it is a span as described.  An engine
  that keeps the listeners is logged once per reason (info level): its spans come from
  upstream's listeners, never from nowhere;
- ``before_cursor_execute`` (listener path, and engines that keep it): the span name
  and attribute dict are computed once per (statement, database name) and cached (at
  most ``MAX_CACHED_STATEMENTS`` per engine), then the span starts with them in one
  call.  Names, attributes and their order, span kind and parent are those upstream
  produces.  On PostgreSQL the database name (``connection.info.dbname``, a libpq call,
  ~2 µs) is read once per DB-API connection; whether instrumentation is suppressed is
  read straight from the context variable.  Engines whose URL has no host and engines
  with the SQL commenter on keep the upstream code;
- ``Engine.connect``: the ``connect`` span is current around the call as upstream makes
  it (exception recorded and status set the same way), without the context-manager
  layers; inside a request traced by lean spans it is a leaf of the request's record
  like a statement (not current while it runs: nothing the agent traces runs inside a
  checkout, and a span a pool listener starts there parents to the request's span), and
  a failed connect is made the span upstream makes, with its exception event;
- the four pool listeners are not registered when their counter is a no-op.

SQLAlchemy's fast path needs *no* engine listener at all: a listener on the ``Engine``
class (an APM's, the application's, or chokepoint's own repeated-read flag in
``client_flags``, registered by default) puts every engine back on the slow path, and
the dialect spans then save nothing.  Measured (CPU µs, medians of paired rounds, 2
cores shared with other work):

- in process (SDK tracer provider, real PostgreSQL, one connect + three statements, 21
  alternating rounds of 200, both engines traced): listener path 584, dialect spans 528
  (−53); with a no-op class-level ``before_cursor_execute`` listener as ``client_flags``
  registers: 599 and 580 (median paired difference +12: nothing saved);
- ``bench/overhead/request_cpu.py --rounds 20 --requests 80 --variants
  "none,chokepoint,chokepoint+CHOKEPOINT_SQLALCHEMY_SPANS=listeners"`` (defaults, so the
  repeated-read listener is there): −160, +13, −46, −84, −7, +57 µs per request over six
  runs of 10–20 rounds (``none`` 1336 to 1960: swings of ±100 µs).  With
  ``CHOKEPOINT_REPEATED_READ_WINDOW_S=0`` (no class-level listener): −43, −182 and −64
  (the quietest: none 1530, dialect spans +376, listeners +440, and the defaults +478 in
  the same run).  The gain shows once the class-level listener is gone, i.e. with the
  repeated-read check made from a dialect wrapper rather than an ``Engine`` listener (``DefaultDialect.do_execute`` patched at class level composes
  with the wrappers here, which call the bound method found at engine creation).

``CHOKEPOINT_SQLALCHEMY=upstream`` leaves the upstream instrumentor untouched.  If the
upstream internals this relies on are missing (another version), nothing is patched and
an info line says so (upstream's listeners make the spans).

SQLAlchemy 2.1: the upstream instrumentor (0.66b1) declares ``sqlalchemy < 2.1`` and
``opentelemetry-instrument`` skips it; :func:`install_lean_sqlalchemy` then instruments it
itself (:func:`instrument_beyond_declared_range`, releases the library matrix tests).
Supported and tested: SQLAlchemy 1.4 to 2.1 (``make matrix``, docs/MATRIX.md).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable

_log = logging.getLogger(__name__)

SPANS_VARIABLE = "CHOKEPOINT_SQLALCHEMY_SPANS"
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


def spans_mode(environ=None) -> str:
    """``CHOKEPOINT_SQLALCHEMY_SPANS``: ``dialect`` (default) or ``listeners``."""
    raw = (os.environ if environ is None else environ).get(SPANS_VARIABLE, "").strip().lower()
    if raw in ("", "dialect"):
        return "dialect"
    if raw != "listeners":
        _log.warning("chokepoint: %s=%r must be dialect or listeners; using dialect", SPANS_VARIABLE, raw)
        return "dialect"
    return raw


def install_lean_sqlalchemy(mode: str | None = None) -> Callable[[], None] | None:
    """Install the lean path (``mode``: ``dialect`` or ``listeners``; default from the
    environment, see :func:`spans_mode`); returns the undo callable, or ``None``.

    First instruments a SQLAlchemy newer than the upstream instrumentor declares, when
    ``opentelemetry-instrument`` skipped it for that reason alone (see
    :func:`instrument_beyond_declared_range`)."""
    dialect_spans = (mode or spans_mode()) == "dialect"
    try:
        from opentelemetry.instrumentation.sqlalchemy import engine as upstream
    except ImportError:
        return None
    extra_undo = instrument_beyond_declared_range()
    missing = [name for name in _NEEDED if not hasattr(upstream, name)]
    if missing:
        _log_once(f"chokepoint: SQLAlchemy instrumentor internals changed ({', '.join(missing)} missing); its own listeners make the statement spans")
        return extra_undo
    tracer_cls = upstream.EngineTracer
    original_before = tracer_cls.__dict__.get("_before_cur_exec")
    original_register = tracer_cls.__dict__.get("_register_event_listener")
    original_remove_all = tracer_cls.__dict__.get("remove_all_event_listeners")
    if original_before is None or original_register is None or original_remove_all is None or getattr(original_before, "_chokepoint", False):
        return extra_undo
    undo: list[Callable[[], None]] = [] if extra_undo is None else [extra_undo]

    tracer_cls._before_cur_exec = _make_before_cur_exec(upstream, original_before)
    undo.append(lambda: setattr(tracer_cls, "_before_cur_exec", original_before))
    tracer_cls._register_event_listener = _make_register(original_register, dialect_spans)
    undo.append(lambda: setattr(tracer_cls, "_register_event_listener", original_register))
    if dialect_spans:
        remove_all = original_remove_all.__func__

        def remove_all_event_listeners(cls):  # SQLAlchemyInstrumentor.uninstrument: dialects too
            _unwrap_dialects()
            return remove_all(cls)

        tracer_cls.remove_all_event_listeners = classmethod(remove_all_event_listeners)
        undo.append(lambda: setattr(tracer_cls, "remove_all_event_listeners", original_remove_all))
        undo.append(_unwrap_dialects)
    connect_undo = _install_lean_connect(upstream)
    if connect_undo is not None:
        undo.append(connect_undo)

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all


BEYOND_DECLARED_RANGE = ((2, 1), (2, 2))  # SQLAlchemy releases past upstream's declared range that chokepoint is tested on (docs/MATRIX.md)


def instrument_beyond_declared_range() -> Callable[[], None] | None:
    """Instrument SQLAlchemy with the upstream instrumentor when ``opentelemetry-instrument``
    skipped it only because the installed SQLAlchemy is newer than it declares (0.66b1:
    ``sqlalchemy < 2.1``) and that release is in :data:`BEYOND_DECLARED_RANGE` (tested by the
    library matrix, ``make matrix``); returns the undo callable, or ``None`` when nothing
    was done.  Not when the instrumentor is already on, or is disabled with
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy``.  Logs once at info level."""
    try:
        from importlib.metadata import version

        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        instrumentor = SQLAlchemyInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            return None
        disabled = {name.strip() for name in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
        if "sqlalchemy" in disabled or get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is None:
            return None
        installed = version("sqlalchemy")
        release = tuple(int(part) for part in installed.split(".")[:2])
        if not BEYOND_DECLARED_RANGE[0] <= release < BEYOND_DECLARED_RANGE[1]:
            return None
        instrumentor.instrument(meter_provider=NoOpMeterProvider(), skip_dep_check=True)
        from chokepoint.instrument.sqlalchemy_async_dedupe import install_sqlalchemy_async_dedupe

        dedupe_undo = install_sqlalchemy_async_dedupe()
    except Exception:
        _log.warning("chokepoint: instrumenting SQLAlchemy past the upstream instrumentor's declared range failed", exc_info=True)
        return None
    _log.info("chokepoint: SQLAlchemy %s is newer than the upstream instrumentor declares; instrumented by chokepoint (tested release)", installed)

    def undo() -> None:
        if dedupe_undo is not None:
            dedupe_undo()
        instrumentor.uninstrument()

    return undo


_logged: set[str] = set()


def _log_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        _log.info(message)


def _make_before_cur_exec(upstream, original):
    get_url_attributes = upstream._get_attributes_from_url
    get_db_name = upstream._get_db_name_from_cursor_or_conn
    set_statement, set_system, set_operation = upstream._set_db_statement, upstream._set_db_system, upstream._set_db_operation
    instrumentation_enabled = _lean_instrumentation_enabled(upstream.is_instrumentation_enabled)
    from opentelemetry.trace import SpanKind

    from chokepoint.instrument.lean_spans import LeafTemplate

    client = SpanKind.CLIENT

    def template(self, conn, cursor, statement):
        """The statement span's name and attributes as upstream's ``_before_cur_exec`` makes
        them (a :class:`~chokepoint.instrument.lean_spans.LeafTemplate`, cached), or ``None``
        when suppressed; ``_UPSTREAM`` when only upstream's own code can make the span."""
        if not instrumentation_enabled():
            return None
        url = conn.engine.url
        cache = self.__dict__.get("_chokepoint_cache")
        if cache is None or cache[0] is not url:
            attributes, found = get_url_attributes(url, self._sem_conv_opt_in_mode_db, self._sem_conv_opt_in_mode_http)
            db_names = {} if "postgres" in (self.vendor or "").lower() else None
            cache = self._chokepoint_cache = (url, attributes if found else None, {}, db_names)
        url_attributes, statements, db_names = cache[1], cache[2], cache[3]
        if url_attributes is None:  # no host in the URL: upstream reads the cursor's connection
            return _UPSTREAM
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
            entry = LeafTemplate(name, attributes, client)
            if len(statements) < MAX_CACHED_STATEMENTS:
                statements[(statement, db_name)] = entry
        return entry

    def start_span(self, conn, cursor, statement):
        """The statement span upstream's ``_before_cur_exec`` starts, or ``None`` when
        suppressed; ``_UPSTREAM`` when only upstream's own code can make it."""
        entry = template(self, conn, cursor, statement)
        if entry is None or entry is _UPSTREAM:
            return entry
        return self.tracer.start_span(entry.name, kind=client, attributes=entry.attributes)

    def _before_cur_exec(self, conn, cursor, statement, params, context, _executemany):
        if self.enable_commenter:
            return original(self, conn, cursor, statement, params, context, _executemany)
        span = start_span(self, conn, cursor, statement)
        if span is _UPSTREAM:
            return original(self, conn, cursor, statement, params, context, _executemany)
        if span is not None:
            context._otel_span = span
        return statement, params

    _before_cur_exec._chokepoint = True
    _before_cur_exec.__wrapped__ = original
    _before_cur_exec._chokepoint_start_span = start_span
    _before_cur_exec._chokepoint_template = template
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


def _make_register(original, dialect_spans: bool):
    from opentelemetry.metrics import NoOpUpDownCounter

    underlying = original.__func__
    via_dialect: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> its spans come from the dialect

    def _register_event_listener(cls, target, identifier, func, *args, **kw):
        owner = getattr(func, "__self__", None)
        if identifier in _POOL_EVENTS and isinstance(getattr(owner, "connections_usage", None), NoOpUpDownCounter):
            return None  # the listener would only feed a no-op counter
        if dialect_spans and identifier in _CURSOR_EVENTS:
            # upstream registers before_cursor_execute first, then the other two; an async
            # engine gets two tracers (create_async_engine calls the wrapped create_engine),
            # of which upstream exports one span per statement: the dialect makes that one
            if identifier == "before_cursor_execute":
                if via_dialect.get(target):  # upstream ends (and exports) the last tracer's span
                    _tracers[target.dialect][0] = owner
                else:
                    via_dialect[target] = _wrap_dialect(owner, target)
            if via_dialect.get(target):
                return None
        return underlying(cls, target, identifier, func, *args, **kw)

    return classmethod(_register_event_listener)


_CURSOR_EVENTS = ("before_cursor_execute", "after_cursor_execute", "handle_error")
_DIALECT_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")
_UPSTREAM = object()
_NO_SPAN = None  # start_span's answer when upstream's own listener must make the span
_tracers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # wrapped dialect -> [its EngineTracer]


def _wrap_dialect(engine_tracer, engine) -> bool:
    """Make ``engine``'s statement spans from its dialect's execute methods (instance
    attributes wrapping the bound originals); ``False`` (the listeners then stay) when the
    engine needs upstream's own code or another wrapper got there first."""
    try:
        from sqlalchemy.engine.base import Engine

        start_span = engine_tracer._before_cur_exec._chokepoint_start_span
        template = getattr(engine_tracer._before_cur_exec, "_chokepoint_template", None)
        dialect = engine.dialect
        reason = (
            "an Engine subclass"
            if type(engine) is not Engine
            else "the SQL commenter is on"
            if engine_tracer.enable_commenter
            else "its dialect's execute methods are wrapped or have listeners"
            if any(name in dialect.__dict__ for name in (*_DIALECT_METHODS, "initialize"))
            or any(len(getattr(dialect.dispatch, name)) for name in _DIALECT_METHODS)
            else "the upstream internals differ"
            if start_span is None or template is None
            else None
        )
        if reason is None:
            from opentelemetry.instrumentation.sqlalchemy.engine import _get_attributes_from_url

            _, found = _get_attributes_from_url(engine.url, engine_tracer._sem_conv_opt_in_mode_db, engine_tracer._sem_conv_opt_in_mode_http)
            if not found:  # upstream reads the attributes from the cursor
                reason = "its URL has no host"
        if reason is not None:
            _log_once(f"chokepoint: SQLAlchemy {engine.name} engine: statement spans from the upstream listeners ({reason})")
            return False
        from time import time_ns

        from opentelemetry.trace import Status, StatusCode

        from chokepoint.instrument.lean_spans import add_leaf, leaf_request
    except Exception:
        _log.info("chokepoint: SQLAlchemy dialect spans not installed for an engine; statement spans from the upstream listeners", exc_info=True)
        return False
    error = StatusCode.ERROR

    def failed(span, exc: BaseException) -> None:
        if span.is_recording():  # as upstream's handle_error listener
            span.set_status(Status(error, str(exc)))
        span.end()

    do_execute, do_executemany, do_execute_no_params = (getattr(dialect, name) for name in _DIALECT_METHODS)
    initialize = dialect.initialize

    holder = [engine_tracer]
    initializing: list = []  # the connections the dialect runs its first-connect checks on (no engine events: no span, as upstream)

    def traced_initialize(connection):
        initializing.append(connection)
        try:
            return initialize(connection)
        finally:
            initializing.remove(connection)

    def traced_span(context, cursor, statement):
        """``_NO_SPAN``, the statement's span, or ``(template, parent, request, tracer)``: the
        statement goes into the current request's record as a leaf (``lean_spans.leaf_request``)."""
        try:
            conn = context.root_connection
            if initializing and any(conn is c for c in initializing):
                return _NO_SPAN
            owner = holder[0]
            leaf = leaf_request(owner.tracer)
            if leaf is not None:
                entry = template(owner, conn, cursor, statement)
                return _NO_SPAN if entry is None or entry is _UPSTREAM else (entry, leaf[0], leaf[1], owner.tracer)
            span = start_span(owner, conn, cursor, statement)
        except Exception:  # the statement runs untraced rather than fail
            _log.debug("chokepoint: SQLAlchemy statement span failed", exc_info=True)
            return _NO_SPAN
        return _NO_SPAN if span is None or span is _UPSTREAM else span

    def done(traced, start: int, exc: BaseException | None) -> None:
        """End the statement's span, or append its leaf to the request's record."""
        if type(traced) is tuple:
            entry, parent, request, tracer = traced
            add_leaf(request, (start, time_ns(), entry, parent, None if exc is None else Status(error, str(exc)), tracer))
        elif exc is None:
            traced.end()
        else:
            failed(traced, exc)

    def traced_do_execute(cursor, statement, parameters, context=None):
        traced = _NO_SPAN if context is None else traced_span(context, cursor, statement)
        if traced is _NO_SPAN:
            return do_execute(cursor, statement, parameters, context)
        start = time_ns()
        try:
            result = do_execute(cursor, statement, parameters, context)
        except BaseException as exc:
            done(traced, start, exc)
            raise
        done(traced, start, None)
        return result

    def traced_do_executemany(cursor, statement, parameters, context=None):
        traced = _NO_SPAN if context is None else traced_span(context, cursor, statement)
        if traced is _NO_SPAN:
            return do_executemany(cursor, statement, parameters, context)
        start = time_ns()
        try:
            result = do_executemany(cursor, statement, parameters, context)
        except BaseException as exc:
            done(traced, start, exc)
            raise
        done(traced, start, None)
        return result

    def traced_do_execute_no_params(cursor, statement, context=None):
        traced = _NO_SPAN if context is None else traced_span(context, cursor, statement)
        if traced is _NO_SPAN:
            return do_execute_no_params(cursor, statement, context)
        start = time_ns()
        try:
            result = do_execute_no_params(cursor, statement, context)
        except BaseException as exc:
            done(traced, start, exc)
            raise
        done(traced, start, None)
        return result

    dialect.do_execute, dialect.do_executemany, dialect.do_execute_no_params = traced_do_execute, traced_do_executemany, traced_do_execute_no_params
    dialect.initialize = traced_initialize
    _tracers[dialect] = holder
    return True


def _unwrap_dialects() -> None:
    for dialect in list(_tracers):
        for name in (*_DIALECT_METHODS, "initialize"):
            dialect.__dict__.pop(name, None)
    _tracers.clear()


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
    from time import time_ns

    from opentelemetry import context as context_api
    from opentelemetry import trace
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability, _OpenTelemetryStabilitySignalType
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from chokepoint.instrument.lean_spans import LeafTemplate, add_leaf, leaf_request

    stability = _OpenTelemetrySemanticConventionStability
    get_url_attributes, set_system, normalize_vendor = upstream._get_attributes_from_url, upstream._set_db_system, upstream._normalize_vendor
    instrumentation_enabled = _lean_instrumentation_enabled(upstream.is_instrumentation_enabled)
    client = SpanKind.CLIENT
    cache: dict = {}

    def connect_template(engine) -> LeafTemplate:
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
        template = LeafTemplate("connect", attributes, client)
        cache[id(url)] = (url, engine.name, template)
        return template

    def failed(span, exc: Exception) -> None:  # as trace.use_span records it (BaseException passes through)
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(status_code=StatusCode.ERROR, description=f"{type(exc).__name__}: {exc}"))

    def _lean_connect(func, engine, args, kwargs):
        if not instrumentation_enabled():
            return func(*args, **kwargs)
        template = connect_template(engine)
        leaf = leaf_request(tracer)
        if leaf is not None:  # a leaf of the request; a failure makes it the span it would have been
            start = time_ns()
            try:
                connection = func(*args, **kwargs)
            except Exception as exc:
                span = tracer.start_span("connect", kind=client, attributes=template.attributes, start_time=start)
                failed(span, exc)
                span.end()
                raise
            except BaseException:
                add_leaf(leaf[1], (start, time_ns(), template, leaf[0], None, tracer))
                raise
            add_leaf(leaf[1], (start, time_ns(), template, leaf[0], None, tracer))
            return connection
        span = tracer.start_span("connect", kind=client, attributes=template.attributes)
        token = context_api.attach(trace.set_span_in_context(span))
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            failed(span, exc)
            raise
        finally:
            context_api.detach(token)
            span.end()

    _lean_connect._chokepoint = True
    lean = Engine.connect = wrapt.FunctionWrapper(original, _lean_connect)

    def undo() -> None:  # unless the instrumentor has unwrapped (or re-wrapped) it since
        if Engine.__dict__.get("connect") is lean:
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
