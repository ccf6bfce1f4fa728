"""Reading metric points in probe tests: a real SDK MeterProvider with an InMemoryMetricReader."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


class Metrics:
    """A fresh meter; ``point(name, attrs)`` collects and returns the one matching point."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.meter = self.provider.get_meter("chokepoint.test")

    def collect(self) -> dict[str, list]:
        out: dict[str, list] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def points(self, name: str, attrs: dict | None = None, collected: dict | None = None) -> list:
        collected = self.collect() if collected is None else collected
        want = attrs or {}
        return [p for p in collected.get(name, []) if all(p.attributes.get(k) == v for k, v in want.items())]

    def point(self, name: str, attrs: dict | None = None, collected: dict | None = None):
        found = self.points(name, attrs, collected)
        assert len(found) == 1, f"{name} {attrs}: expected one point, got {[(dict(p.attributes)) for p in found]}"
        return found[0]

    def value(self, name: str, attrs: dict | None = None, collected: dict | None = None):
        return self.point(name, attrs, collected).value

    def close(self) -> None:
        self.provider.shutdown()
