"""A real Prometheus scrapes the collector's /metrics; PromQL returns the ingested counts."""

from __future__ import annotations

import pytest

from chokepoint.collector import catalog
from devservices import PrometheusService, ServiceUnavailable
from tests.integration.collector_probe import post_traces, promql, server_spans, wait_for


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_prometheus_scrapes_ingested_counts(collector):
    for _ in range(3):
        resp = post_traces(collector.otlp_http, server_spans("shop", "/cart", 250, name="GET /cart", first_trace_id=0))
        assert resp.status_code == 200
    try:
        prom = PrometheusService([collector.api.removeprefix("http://")], scrape_interval="1s")
        prom.__enter__()
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        ingested = f'{catalog.INGEST_SPANS.sample_name}{{protocol="http"}}'
        requests_total = f'{catalog.REQUESTS.sample_name}{{service="shop",route="/cart"}}'
        values: dict[str, float] = {}

        def both_answered() -> bool:
            for query in (ingested, requests_total):
                if result := promql(prom.url, query):
                    values[query] = float(result[0]["value"][1])
            return len(values) == 2

        wait_for(both_answered, timeout_s=30, interval_s=0.5)
        assert values.get(ingested) == 750
        assert values.get(requests_total) == 750
        up = promql(prom.url, "up")
        assert [float(r["value"][1]) for r in up] == [1.0]
    finally:
        prom.stop()
