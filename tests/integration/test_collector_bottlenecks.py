"""Findings end to end: OTLP metrics from the SDK → analyzer run by the service → /bottlenecks and /metrics."""

from __future__ import annotations

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from chokepoint.collector import catalog
from chokepoint.instrument import signals
from tests.integration.collector_probe import metric_samples, wait_for


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0, "analyze_interval_s": 0.5}], indirect=True)
def test_open_breaker_becomes_a_circuit_open_finding(collector):
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{collector.otlp_http}/v1/metrics"), export_interval_millis=60_000)
    provider = MeterProvider(resource=Resource.create({signals.ATTR_SERVICE_NAME: "shop"}), metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_observable_gauge(signals.BREAKER_STATE, callbacks=[lambda options: [Observation(2, {signals.ATTR_BREAKER_NAME: "payments"})]])
    calls = meter.create_counter(signals.BREAKER_CALLS)
    calls.add(30, {signals.ATTR_BREAKER_NAME: "payments", signals.ATTR_BREAKER_RESULT: "rejected"})
    calls.add(10, {signals.ATTR_BREAKER_NAME: "payments", signals.ATTR_BREAKER_RESULT: "failure"})
    assert provider.force_flush(10_000)
    provider.shutdown()

    findings = requests.get(f"{collector.api}/api/v1/bottlenecks", params={"window": 60}, timeout=10).json()["findings"]
    circuit = [f for f in findings if f["kind"] == "circuit_open"]
    assert [(f["service"], f["target"], f["evidence"]["state"]) for f in circuit] == [("shop", "payments", "open")]
    assert circuit[0]["severity"] in catalog.SEVERITIES and 0 < circuit[0]["score"] <= 1
    assert circuit[0]["recommendation"]

    def score():
        samples = metric_samples(collector.api).items()
        return next(
            (v for (name, labels), v in samples if name == catalog.BOTTLENECK_SCORE.name and {("kind", "circuit_open"), ("target", "payments")} <= set(labels)),
            None,
        )

    value = wait_for(score, timeout_s=10)
    assert value == pytest.approx(circuit[0]["score"])
