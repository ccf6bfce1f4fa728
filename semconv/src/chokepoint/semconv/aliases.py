"""Attribute-name aliases across OpenTelemetry semantic-convention generations.

Each ``*_KEYS`` tuple lists the current name first, then older names; a reader takes the
first one present (:func:`first`).  The agent (its per-request breakdown) and the collector
(spans and metric points from any SDK) read the same tuples, so a peer host, a DB system or
a status code is found under the same names on both sides.

Usage::

    from chokepoint.semconv.aliases import SERVER_ADDRESS_KEYS, first
    host = first(span_attributes, SERVER_ADDRESS_KEYS)   # "db.internal", or None
"""

from __future__ import annotations

from chokepoint.semconv import signals as sig

HTTP_ROUTE_KEYS = (sig.ATTR_HTTP_ROUTE,)
HTTP_METHOD_KEYS = (sig.ATTR_HTTP_METHOD, "http.method")
HTTP_STATUS_KEYS = (sig.ATTR_HTTP_STATUS, "http.status_code")
URL_PATH_KEYS = ("url.path", "http.target")
URL_FULL_KEYS = ("url.full", "http.url")
# the peer's host name first (``http.host`` may carry ``:port``), then its socket address
SERVER_ADDRESS_KEYS = (sig.ATTR_SERVER_ADDRESS, "net.peer.name", "http.host", "server.socket.address", "net.sock.peer.addr", "net.peer.ip")
SERVER_PORT_KEYS = ("server.port", "net.peer.port")
DB_SYSTEM_KEYS = (sig.ATTR_DB_SYSTEM, "db.system")
DB_SUMMARY_KEYS = (sig.ATTR_DB_QUERY_SUMMARY,)
DB_STATEMENT_KEYS = (sig.ATTR_DB_STATEMENT, "db.statement")
DB_OPERATION_KEYS = ("db.operation.name", "db.operation")
MESSAGING_SYSTEM_KEYS = (sig.ATTR_MESSAGING_SYSTEM,)
MESSAGING_DESTINATION_KEYS = (sig.ATTR_MESSAGING_DESTINATION, "messaging.destination", "messaging.kafka.destination")
MESSAGING_PARTITION_KEYS = (sig.ATTR_MESSAGING_PARTITION, "messaging.kafka.destination.partition", "messaging.kafka.partition")
MESSAGING_GROUP_KEYS = (sig.ATTR_MESSAGING_CONSUMER_GROUP, "messaging.kafka.consumer.group", "messaging.kafka.consumer_group")
POOL_NAME_KEYS = (sig.ATTR_DB_POOL_NAME, sig.ATTR_POOL_NAME, "pool.name")
POOL_STATE_KEYS = (sig.ATTR_DB_POOL_STATE, "state")

# every attribute a span reader may need, for a single pass over span attributes
SPAN_KEYS = frozenset(
    HTTP_ROUTE_KEYS
    + HTTP_METHOD_KEYS
    + HTTP_STATUS_KEYS
    + URL_PATH_KEYS
    + URL_FULL_KEYS
    + SERVER_ADDRESS_KEYS
    + SERVER_PORT_KEYS
    + DB_SYSTEM_KEYS
    + DB_SUMMARY_KEYS
    + DB_STATEMENT_KEYS
    + DB_OPERATION_KEYS
    + MESSAGING_SYSTEM_KEYS
    + MESSAGING_DESTINATION_KEYS
    + (sig.ATTR_KEEP_REASON, sig.ATTR_ERROR_TYPE)
)


def first(attrs, keys: tuple[str, ...]):
    """The value of the first of ``keys`` present and non-empty in ``attrs`` (a mapping), else None."""
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None
