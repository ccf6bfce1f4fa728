"""A real collector (``CollectorService``: its ``Store`` and REST API) filled with synthetic data.

The store is written through its own write methods, so the dashboards read the actual
``/api/v1`` contract.  Usage::

    with SyntheticCollector(tmp_dir, routes=12, token="s3cret") as collector:
        ApiClient(collector.url, token="s3cret").endpoints()
"""

from __future__ import annotations

from pathlib import Path

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService

SERVICE = "shop"
DB_POOL = "sqlalchemy:postgresql"


class SyntheticCollector:
    """A started collector on loopback ports whose store holds a shop service with ``routes`` routes."""

    def __init__(self, data_dir: Path, routes: int = 12, token: str | None = None, blind_spots: list[dict] | None = None) -> None:
        config = CollectorConfig(
            otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=data_dir, sqlite_path=Path(data_dir) / "collector.sqlite", token=token
        )
        self.service = CollectorService(config)
        self.routes = [f"/api/items{i}" for i in range(routes)]
        self.blind_spots = list(blind_spots or [])

    @property
    def url(self) -> str:
        return self.service.api_url

    @property
    def store(self):
        return self.service.store

    def fill(self) -> None:
        store = self.store
        for i, route in enumerate(self.routes):
            store.add_requests(SERVICE, route, [0.002 * (i + 1) * (1 + k / 100) for k in range(100)], errors=i % 3)
        store.set_pool(SERVICE, "db", DB_POOL, used=10, max=10, pending=14)
        store.add_pool_waits(SERVICE, "db", DB_POOL, [0.41] * 20)
        store.set_breaker_state(SERVICE, "payments", "open")
        for spot in self.blind_spots:
            store.set_coverage(spot["service"], spot["library"], spot["what"], 0, version=spot.get("version", ""), try_=spot.get("try", ""))

    def __enter__(self) -> SyntheticCollector:
        self.service.start()
        self.fill()
        return self

    def __exit__(self, *exc) -> None:
        self.service.shutdown()
