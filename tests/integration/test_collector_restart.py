"""Restart: stop the service, start it again on the same SQLite file, the aggregates are still there."""

from __future__ import annotations

import time

import requests

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from tests.integration.collector_probe import post_traces, server_spans


def endpoints(service: CollectorService) -> list[tuple]:
    rows = requests.get(f"{service.api_url}/api/v1/endpoints", params={"service": "shop", "window": 600}, timeout=10).json()["endpoints"]
    return sorted((r["route"], r["count"], r["p99_ms"]) for r in rows)


def test_restart_on_the_same_sqlite_file_keeps_aggregates(tmp_path):
    config = CollectorConfig(otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=tmp_path, bucket_seconds=1.0)
    first = CollectorService(config)
    first.start()
    try:
        for route, n in (("/cart", 300), ("/checkout", 120)):
            resp = post_traces(first.otlp_http_url, server_spans("shop", route, n, first_trace_id=7, duration_ms=lambda i: i % 20 + 1))
            assert resp.status_code == 200
        before = endpoints(first)
        assert [(r, c) for r, c, _ in before] == [("/cart", 300), ("/checkout", 120)]
        time.sleep(1.2)  # let the bucket close so it is a persisted one
    finally:
        first.shutdown()
        first.shutdown()  # idempotent
    assert (tmp_path / "chokepoint.sqlite").stat().st_size > 0

    second = CollectorService(config)
    second.start()
    try:
        assert second.restored_buckets >= 1
        assert endpoints(second) == before
    finally:
        second.shutdown()
