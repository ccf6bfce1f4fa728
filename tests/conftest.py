"""Shared pytest set-up for chokepoint.

Markers are given by directory so nobody has to remember them:
``tests/integration`` → ``integration``, ``tests/scenarios`` → ``scenario``, the rest
(``tests/instrument``, ``tests/collector``, ``tests/dashboards``) → ``unit``.

Real services are session fixtures started on first use, on free loopback ports, and
stopped at the end of the session (``scripts/devservices.py``).  A service that cannot
start fails the tests that need it with the message saying what to install — it is
never skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devservices import KafkaService, MariaDBService, PostgresService, RedisService, ServiceUnavailable, chromium_path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("CHOKEPOINT_TEST_ARTIFACTS", REPO / "test-artifacts"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
        elif parts[0] == "scenarios":
            item.add_marker(pytest.mark.scenario)
        elif parts[0] == "zoo":
            item.add_marker(pytest.mark.zoo)
        else:
            item.add_marker(pytest.mark.unit)


def _start(factory):
    try:
        svc = factory()
        svc.__enter__()
    except ServiceUnavailable as exc:
        pytest.fail(f"{factory.__name__}: {exc}", pytrace=False)
    return svc


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL cluster (``.dsn``, ``.url`` for SQLAlchemy, ``.port``)."""
    svc = _start(PostgresService)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def kafka():
    """A real single-node KRaft Kafka broker (``.bootstrap``)."""
    svc = _start(KafkaService)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def redis():
    """A real redis-server (``.url``, ``.port``, ``.socket_path``)."""
    svc = _start(RedisService)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def mariadb():
    """A real MariaDB server (``.host``, ``.port``, ``.user``, ``.database``, ``.url`` for SQLAlchemy)."""
    svc = _start(MariaDBService)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's Chromium binary."""
    try:
        return chromium_path()
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save screenshots and reports (kept after the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------- collector (owned by collector edges)
# A real chokepoint collector (OTLP gRPC + HTTP receivers, REST API, /metrics, SQLite
# persistence in tmp_path) started in-process on free loopback ports, stopped after the test.
# Config overrides via indirect parametrization:
#   @pytest.mark.parametrize("collector", [{"bucket_seconds": 1, "token": "t"}], indirect=True)


class RunningCollector:
    """Handle on a started ``CollectorService``: ``.otlp_http``, ``.otlp_grpc``, ``.api`` URLs, ``.store``."""

    def __init__(self, service) -> None:
        self.service = service
        self.otlp_http = service.otlp_http_url  # http://127.0.0.1:PORT (append /v1/traces)
        self.otlp_grpc = service.otlp_grpc_endpoint  # 127.0.0.1:PORT
        self.api = service.api_url  # http://127.0.0.1:PORT (append /api/v1/... or /metrics)
        self.store = service.store


@pytest.fixture
def collector(request, tmp_path):
    from chokepoint.collector.config import CollectorConfig
    from chokepoint.collector.service import CollectorService

    overrides = dict(getattr(request, "param", None) or {})
    overrides.setdefault("sqlite_path", tmp_path / "collector.sqlite")
    config = CollectorConfig(**{"otlp_grpc_port": 0, "otlp_http_port": 0, "api_port": 0, "data_dir": tmp_path, **overrides})
    service = CollectorService(config)
    service.start()
    try:
        yield RunningCollector(service)
    finally:
        service.shutdown()
