"""Request queue time from ``X-Request-Start`` / ``X-Queue-Start``: the wait before the server
span starts (in the proxy's queue, the accept backlog, a busy worker), which the app itself
cannot time.

A front proxy stamps the request with the time it received it, as NGINX
(``proxy_set_header X-Request-Start "t=${msec}";``), Heroku's router and most APM-aware load
balancers do::

    X-Request-Start: t=1764012345.123        (seconds, NGINX ``$msec``)
    X-Request-Start: t=1764012345123         (milliseconds, Heroku)
    X-Queue-Start: t=1764012345123456        (microseconds, Apache ``%t``)

For the upstream WSGI, Flask and Django server instrumentations (and the upstream ASGI
one), the two headers must be among ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``
(:func:`capture_request_start` adds them, keeping what the user listed); the lean
ASGI server span captures them itself.

The unit is told by magnitude (the ``t=`` prefix is optional).  The queue time is the
server span's start minus that instant.  The processor
(:mod:`chokepoint.instrument.sampling`) reads it from the server span's captured header
attribute (``http.request.header.x_request_start`` or ``..x_queue_start``, the names the
upstream WSGI/Flask/Django instrumentations give the headers they capture, and the lean
ASGI server span sets the same) and records it into the histogram
``chokepoint.server.queue_wait_time`` (by ``http.route``) and the request's breakdown as
the ``queue`` component — time before the root span, added to the request's time rather
than taken out of ``self``.

Values that cannot be a queue time are not recorded and are counted in
``chokepoint.server.queue_start_rejected`` by ``chokepoint.drop_reason``: ``unparsable``,
``negative`` (the proxy's clock ahead of the app's by more than :data:`SKEW_TOLERANCE_S`)
and ``too_large`` (more than :data:`MAX_QUEUE_S`, one hour: a wrong unit or a stale clock).
A small negative difference (clock skew within the tolerance) counts as zero queue time.
"""

from __future__ import annotations

CAPTURED_REQUEST_HEADERS = "x-request-start,x-queue-start"  # for OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST
REQUEST_START_KEYS = ("http.request.header.x_request_start", "http.request.header.x_queue_start")
HEADERS = (b"x-request-start", b"x-queue-start")  # ASGI header names, in REQUEST_START_KEYS' order
MAX_QUEUE_S = 3600.0
SKEW_TOLERANCE_S = 0.005

REJECT_UNPARSABLE = "unparsable"
REJECT_NEGATIVE = "negative"
REJECT_TOO_LARGE = "too_large"


def header_seconds(value) -> float | None:
    """The instant in ``value`` (``"t=<number>"`` or ``"<number>"``, or a captured header's
    tuple of values: the first) as seconds since the epoch; ``None`` when it is not one."""
    if type(value) is tuple or type(value) is list:
        if not value:
            return None
        value = value[0]
    if type(value) is bytes:
        value = value.decode("latin-1")
    try:
        text = str(value).strip()
        if text[:2] in ("t=", "T="):
            text = text[2:]
        number = float(text)
    except (ValueError, TypeError):
        return None
    if not number > 0.0 or number == float("inf"):
        return None
    if number > 1e14:  # microseconds (1e14 µs is 1973; now ~1.8e15)
        return number / 1e6
    if number > 1e11:  # milliseconds (1e11 ms is 1973; now ~1.8e12)
        return number / 1e3
    return number  # seconds (now ~1.8e9)


def queue_seconds(value, start_ns: int) -> tuple[float | None, str | None]:
    """``(queue time in s, None)`` for a header value and the server span's start, or
    ``(None, reject reason)``."""
    received_s = header_seconds(value)
    if received_s is None:
        return None, REJECT_UNPARSABLE
    waited = start_ns / 1e9 - received_s
    if waited < 0.0:
        if waited < -SKEW_TOLERANCE_S:
            return None, REJECT_NEGATIVE
        waited = 0.0
    if waited > MAX_QUEUE_S:
        return None, REJECT_TOO_LARGE
    return waited, None


CAPTURE_REQUEST_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"


def capture_request_start(environ) -> None:
    """Add the two headers to ``environ[CAPTURE_REQUEST_ENV]`` (keeping what the user listed)."""
    listed = [h.strip() for h in environ.get(CAPTURE_REQUEST_ENV, "").split(",") if h.strip()]
    lowered = {h.lower() for h in listed}
    listed += [h for h in CAPTURED_REQUEST_HEADERS.split(",") if h not in lowered]
    environ[CAPTURE_REQUEST_ENV] = ",".join(listed)
