"""Fixtures for the dashboards' unit tests: a real collector with synthetic data (and one with none), on free ports."""

from __future__ import annotations

import socket

import pytest

from chokepoint.dashboards.client import ApiClient
from tests.dashboards import component_text
from tests.synthetic_collector import SyntheticCollector

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def real_collector(tmp_path_factory):
    """A real collector (store and REST API) holding a synthetic shop service; bearer token ``s3cret``."""
    with SyntheticCollector(tmp_path_factory.mktemp("collector"), routes=12, token=TOKEN) as collector:
        yield collector


@pytest.fixture(scope="module")
def empty_api(tmp_path_factory):
    with SyntheticCollector(tmp_path_factory.mktemp("empty"), empty=True) as collector:
        yield collector


@pytest.fixture
def api(real_collector) -> ApiClient:
    return ApiClient(real_collector.url, timeout_s=5.0, token=TOKEN)


@pytest.fixture
def empty(empty_api) -> ApiClient:
    return ApiClient(empty_api.url, timeout_s=2.0)


@pytest.fixture
def unreachable() -> ApiClient:
    """A client pointed at a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ApiClient(f"http://127.0.0.1:{port}", timeout_s=0.5)


@pytest.fixture
def texts():
    """``texts(component)``: all text inside a Dash component tree, for assertions."""
    return component_text.texts
