"""Is the global propagator OpenTelemetry's default: W3C trace context + baggage, exactly?

With that pair chokepoint's lean paths take shortcuts that give the same result: the
server span (:mod:`chokepoint.instrument.asgi`) starts a request without ``traceparent`` /
``tracestate`` / ``baggage`` headers from the empty context their extraction returns,
without calling them; the client spans (:mod:`chokepoint.instrument.http_client_spans`)
write ``traceparent`` / ``tracestate`` from the span's context themselves.  Any other
propagator (``OTEL_PROPAGATORS``, ``set_global_textmap``) is called as it is.
"""

from __future__ import annotations

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def is_default_w3c(textmap) -> bool:
    """Whether ``textmap`` is the default composite of W3C trace context then baggage."""
    if type(textmap) is not CompositePropagator:
        return False
    return [type(p) for p in getattr(textmap, "_propagators", ())] == [TraceContextTextMapPropagator, W3CBaggagePropagator]
