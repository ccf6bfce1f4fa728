"""Feeding the store through the real ingest (OTLP protobuf → ``Ingestor``), for signals whose
meaning the ingest decides (e.g. which response sizes count as uncompressed)."""

from __future__ import annotations

from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store
from chokepoint.instrument import signals as sig
from tests.collector.otlp_builders import explicit_hist, metrics_request


def ingest_response_sizes(store: Store, service: str, route: str, size_bytes: float, n: int, compressed: bool) -> None:
    """``n`` responses of ``size_bytes`` on ``route``, as the agent's response-size histogram (delta)."""
    hist = explicit_hist(
        sig.HTTP_SERVER_RESPONSE_BODY_SIZE,
        [1_000.0, 100_000.0, 10_000_000.0],
        [0, 0, n, 0],
        attrs={sig.ATTR_HTTP_ROUTE: route, sig.ATTR_RESPONSE_COMPRESSED: compressed},
        unit="By",
        total=size_bytes * n,
    )
    result = Ingestor(store).consume_metrics(metrics_request(service, [hist]))
    assert result.rejected == 0, result
