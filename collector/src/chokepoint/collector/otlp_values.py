"""What both ingest paths (``ingest_spans``, ``ingest_points``) share: OTLP attribute values
as Python values, the service a resource belongs to, the agent's authority names and the
result of one export request.

Usage::

    any_value(kv.value)                  # "GET", 200, True, 1.5, bytes as hex, lists, dicts
    attributes(span.attributes)          # {"http.route": "/items/{id}", ...}
    svc, ident = resource_service(rs.resource)

``resource_service`` returns ``service.name`` (``"unknown_service"`` when absent) and the
resource's identity ``(service.name, service.instance.id, host.name, process.pid)``: the
key of per-process state such as cumulative → delta streams and coverage reports.

``IngestResult`` (accepted, rejected, error message) is what a receiver turns into the OTLP
response's ``partial_success``.  ``AGENT`` is the authority signal a service earns by
sending any ``chokepoint.*`` metric (``AGENT_METRIC_PREFIX``) or a resource whose
``telemetry.distro.name`` starts with ``AGENT_DISTRO``: its traces are pre-sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

from chokepoint.semconv import signals as sig

AGENT = "agent"  # authority signal: the service runs chokepoint's agent (its spans are pre-sampled)
AGENT_DISTRO = "chokepoint"
AGENT_METRIC_PREFIX = "chokepoint."


@dataclass
class IngestResult:
    accepted: int
    rejected: int = 0
    error_message: str = ""


def any_value(v):
    """Python value of an OTLP ``AnyValue`` (arrays/kvlists as strings; keys we read are scalars)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "bool_value":
        return v.bool_value
    if which == "double_value":
        return v.double_value
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def resource_service(resource) -> tuple[str, tuple]:
    """(service.name, identity of the resource for per-stream state)."""
    attrs = attributes(resource.attributes)
    svc = attrs.get(sig.ATTR_SERVICE_NAME) or "unknown_service"
    ident = (svc, attrs.get("service.instance.id"), attrs.get("host.name"), attrs.get("process.pid"))
    return str(svc), ident


def is_http_error(status) -> bool:
    """An HTTP status (int or string) of 500 or above; anything unparsable is not an error."""
    try:
        return int(status) >= 500
    except (TypeError, ValueError):
        return False
