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

from devservices import KafkaService, PostgresService, ServiceUnavailable, chromium_path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("CHOKEPOINT_TEST_ARTIFACTS", REPO / "test-artifacts"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
        elif parts[0] == "scenarios":
            item.add_marker(pytest.mark.scenario)
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
