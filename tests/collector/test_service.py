"""Service wiring: start order, addresses, idempotent shutdown, unwind on a failed start."""

from __future__ import annotations

import socket

import pytest
import requests

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService


def config(tmp_path, **overrides) -> CollectorConfig:
    return CollectorConfig(**{"otlp_grpc_port": 0, "otlp_http_port": 0, "api_port": 0, "data_dir": tmp_path, **overrides})


def test_factory_has_no_side_effects(tmp_path):
    service = CollectorService(config(tmp_path))
    assert service.store is None and service.grpc is None
    assert not (tmp_path / "chokepoint.sqlite").exists()
    service.shutdown()  # shutting down a service never started is fine


def test_start_listens_everywhere_and_shutdown_is_idempotent(tmp_path):
    service = CollectorService(config(tmp_path))
    service.start()
    try:
        assert requests.get(f"{service.api_url}/api/v1/health", timeout=5).json()["status"] == "ok"
        assert requests.post(f"{service.otlp_http_url}/v1/traces", data=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=5).status_code == 200
        host, port = service.otlp_grpc_endpoint.split(":")
        socket.create_connection((host, int(port)), timeout=5).close()
        assert (tmp_path / "chokepoint.sqlite").exists()
    finally:
        service.shutdown()
        service.shutdown()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{service.api_url}/api/v1/health", timeout=2)


def test_failed_start_unwinds_the_parts_already_started(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = CollectorService(config(tmp_path, api_port=port))
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            service.start()
    # the gRPC receiver started before the API failed: it was stopped again, its port is free
    grpc_port = service.grpc.port
    with socket.socket() as again:
        again.bind(("127.0.0.1", grpc_port))
    assert service.persistence is None  # closed
    # and the same service object can start once the port is free
    service.start()
    try:
        assert requests.get(f"{service.api_url}/api/v1/health", timeout=5).status_code == 200
    finally:
        service.shutdown()
