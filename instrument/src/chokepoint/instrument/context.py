"""Per-request state shared by the agent's pieces, carried in a ``contextvars.ContextVar``.

The server-side instrumentation opens a ``RequestContext`` for each request; the DB
pool probe, the DB/HTTP/Kafka client hooks and the breakdown all report into the
current one.  Every function is a cheap no-op outside a request, and none of them
ever raises into user code.

API (stable; other modules import these)::

    start_request(route) -> token          # server instrumentation only
    end_request(token) -> RequestContext   # returns the finished context
    current() -> RequestContext | None
    record_component_time(component, seconds)   # e.g. ("pool_wait", 0.41), ("db", 0.004)
    db_connection_acquired() / db_connection_released()
    db_connections_held() -> int            # >0 means an outbound call now is "in transaction"

A request's ``leaves`` are the spans recorded straight into its record rather than as
span objects (SQL statements: :func:`chokepoint.instrument.lean_spans.leaf_request`), as
``(start ns, end ns, LeafTemplate, parent SpanContext, Status or None, tracer)`` tuples.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestContext:
    route: str
    start_s: float = field(default_factory=time.perf_counter)
    component_seconds: dict[str, float] = field(default_factory=dict)
    db_connections_held: int = 0
    db_queries: int = 0
    trace_id: int = 0  # the request's local trace (set by the span processor)
    leaves: list | None = None  # finished leaf spans of that trace (chokepoint.instrument.lean_spans.leaf_request)
    max_leaves: int = 0


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("chokepoint_request", default=None)


def start_request(route: str) -> contextvars.Token:
    return _current.set(RequestContext(route=route))


def end_request(token: contextvars.Token) -> RequestContext | None:
    ctx = _current.get()
    _current.reset(token)
    return ctx


def current() -> RequestContext | None:
    return _current.get()


def record_component_time(component: str, seconds: float) -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.component_seconds[component] = ctx.component_seconds.get(component, 0.0) + seconds


def db_connection_acquired() -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.db_connections_held += 1


def db_connection_released() -> None:
    ctx = _current.get()
    if ctx is not None and ctx.db_connections_held > 0:
        ctx.db_connections_held -= 1


def db_connections_held() -> int:
    ctx = _current.get()
    return ctx.db_connections_held if ctx is not None else 0
