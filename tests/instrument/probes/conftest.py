from __future__ import annotations

import pytest

from tests.instrument.probes.points import Metrics


@pytest.fixture
def metrics():
    m = Metrics()
    yield m
    m.close()


@pytest.fixture
def installed():
    """Probes installed by a test, uninstalled after it: ``installed.append(probe)``."""
    probes: list = []
    yield probes
    for probe in reversed(probes):
        probe.uninstall()
