"""Helpers for the agent's unit tests: a processor wired to in-memory exporter and reader."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.instruments import AgentInstruments
from chokepoint.instrument.sampling import KeepSlowTracesProcessor


class Harness:
    def __init__(self, config: AgentConfig, exporter=None, seed: int = 7):
        self.reader = InMemoryMetricReader()
        resource = Resource.create({"service.name": "unit"})
        self.meter_provider = MeterProvider(metric_readers=[self.reader], resource=resource)
        self.instruments = AgentInstruments(self.meter_provider.get_meter("chokepoint.instrument"))
        self.instruments.lean.attach(self.meter_provider, [self.reader], resource)
        self.exporter = exporter if exporter is not None else InMemorySpanExporter()
        self.processor = KeepSlowTracesProcessor(config, self.instruments, self.exporter, rng=random.Random(seed))
        self.tracer_provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(self.processor)
        self.tracer = self.tracer_provider.get_tracer("unit")

    def flush(self):
        self.processor.force_flush(5000)

    def metric_points(self, name: str) -> list:
        points = []
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def metric_values(self, name: str) -> dict:
        """{frozenset(attributes.items()): value or count}."""
        out = {}
        for point in self.metric_points(name):
            value = getattr(point, "value", None)
            out[frozenset(point.attributes.items())] = value if value is not None else point.count
        return out

    def close(self):
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def make_harness():
    made = []

    def make(config: AgentConfig | None = None, **kwargs) -> Harness:
        harness = Harness(config or AgentConfig(trace_sample_rate=0.0), **kwargs)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
