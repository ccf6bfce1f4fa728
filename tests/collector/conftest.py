"""Fixtures of the collector's unit tests: a settable clock, a store on it, an ingestor."""

from __future__ import annotations

import pytest

from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.store import Store, StoreConfig
from tests.collector.otlp_builders import Clock


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return Store(StoreConfig(bucket_seconds=10), clock=clock)


@pytest.fixture
def ingestor(store):
    return Ingestor(store)
