"""Overload: more concurrent senders than the collector admits → 429 + Retry-After, and nothing is lost."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from chokepoint.collector import catalog
from tests.integration.collector_probe import metric_samples, post_traces, server_spans

SENDERS, BATCHES, SPANS = 8, 6, 512


def batch(sender: int, b: int) -> bytes:
    return server_spans("flood", "/flood", SPANS, name="GET /flood", first_trace_id=sender * 10_000 + b * 1000 + 1, duration_ms=lambda i: 3.0)


@pytest.mark.parametrize("collector", [{"max_inflight_requests": 1, "retry_after_s": 0}], indirect=True)
def test_overloaded_collector_answers_429_and_retried_batches_all_arrive(collector):
    statuses: list[int] = []
    lock = threading.Lock()

    def sender(k: int) -> None:
        session = requests.Session()
        for b in range(BATCHES):
            body = batch(k, b)
            while True:  # a well-behaved exporter: retry on 429 after Retry-After
                resp = post_traces(collector.otlp_http, body, session, timeout_s=30)
                with lock:
                    statuses.append(resp.status_code)
                if resp.status_code != 429:
                    break
                assert resp.headers["Retry-After"] == "0"
                time.sleep(0.005)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(statuses) <= {200, 429}
    refused = statuses.count(429)
    assert refused > 0, "8 concurrent senders never collided on a 1-request admission limit"
    assert statuses.count(200) == SENDERS * BATCHES

    samples = metric_samples(collector.api)
    assert samples[(catalog.INGEST_SPANS.sample_name, (("protocol", "http"),))] == SENDERS * BATCHES * SPANS
    assert samples[(catalog.INGEST_REJECTED.sample_name, (("protocol", "http"), ("reason", "overload")))] == refused
    rows = requests.get(f"{collector.api}/api/v1/endpoints", params={"service": "flood"}, timeout=10).json()["endpoints"]
    assert [(r["route"], r["count"]) for r in rows] == [("/flood", SENDERS * BATCHES * SPANS)]
