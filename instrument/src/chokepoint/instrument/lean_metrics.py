"""Lean in-process aggregation for the agent's per-request metrics.

Why: on the request path the OpenTelemetry SDK's ``Histogram.record`` does much more
per value (attribute hashing and sorting, measurement objects, locks, exemplar
reservoirs) than the agent's ~10 values per request need.  A histogram value costs one
``deque.append`` on the request path and is folded into its series (one dict lookup,
one ``log2``) when the metrics are collected; a counter adds under a lock.  Finished OTLP
points go to the SDK at collection time, so they travel with every other metric through
the configured reader and exporter (same resource, same export, cumulative
temporality).  See the overhead benchmark in docs/BENCHMARKS.md.

Usage::

    registry = LeanMetrics(scope_name="chokepoint.instrument")
    latency = registry.histogram("http.server.request.duration", unit="s")
    latency.record(0.012, ("GET", "/items/{id}", 200), ("http.request.method", "http.route", "http.response.status_code"))
    time_by_component = registry.counter("chokepoint.request.breakdown.time", unit="s")
    keys = ("http.route", "chokepoint.component", "chokepoint.slow")
    time_by_component.add(0.004, ("/items/{id}", "db", False), keys)
    time_by_component.add_each([(0.004, ("/items/{id}", "db", False)), (0.001, ("/items/{id}", "self", False))], keys)  # one lock
    registry.attach(meter_provider)   # merged into every reader's collection

Attribute values are passed as a tuple plus the matching tuple of keys (keys tuples are
module constants, so building a key costs one tuple).  Histograms are base-2 exponential
at ``SCALE`` (relative error < 2.2 %), downscaled at export to at most ``MAX_BUCKETS``
buckets like the SDK's default aggregation.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import deque

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from chokepoint.instrument.compat import meter_provider_resource, reader_collect, set_reader_collect

SCALE = 5
MAX_BUCKETS = 160
FOLD_AT = 4096  # pending histogram values folded on the recording thread past this many (memory bound between collections)
_FACTOR = 2**SCALE
_log2 = math.log2
_ceil = math.ceil


_INSTRUMENTS: weakref.WeakSet = weakref.WeakSet()  # their locks are renewed in a forked child


def _renew_locks() -> None:
    for instrument in list(_INSTRUMENTS):
        instrument._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)  # a fork while another thread folds or adds


class _HistogramSeries:
    __slots__ = ("buckets", "count", "max", "min", "sum", "zero_count")

    def __init__(self):
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.zero_count = 0
        self.min = math.inf
        self.max = -math.inf


class LeanHistogram:
    """``record`` appends ``(value, values, keys)`` to a queue (one ``deque.append``, atomic
    under the GIL: no lock, no arithmetic on the request path); the values are folded into
    their series when the histogram is read (``points``, at every collection) or once
    ``FOLD_AT`` are pending, whichever comes first."""

    def __init__(self, name: str, unit: str, description: str = ""):
        self.name = name
        self.unit = unit
        self.description = description
        self._series: dict[tuple, _HistogramSeries] = {}
        self._keys: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        self._pending: deque = deque()
        self._append = self._pending.append
        _INSTRUMENTS.add(self)

    def record(self, value: float, values: tuple, keys: tuple) -> None:
        self._append((value, values, keys))
        if len(self._pending) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Fold the pending values into their series (values appended meanwhile wait for the next fold)."""
        with self._lock:
            pending = self._pending
            take = pending.popleft
            series_of = self._series
            for _ in range(len(pending)):
                value, values, keys = take()
                series = series_of.get(values)
                if series is None:
                    series = series_of[values] = _HistogramSeries()
                    self._keys[values] = keys
                series.count += 1
                series.sum += value
                if value < series.min:
                    series.min = value
                if value > series.max:
                    series.max = value
                if value <= 0.0:
                    series.zero_count += 1
                else:
                    index = _ceil(_log2(value) * _FACTOR) - 1
                    buckets = series.buckets
                    buckets[index] = buckets.get(index, 0) + 1

    def points(self, start_ns: int, now_ns: int) -> list[ExponentialHistogramDataPoint]:
        self._fold()
        with self._lock:
            snapshot = [(values, self._keys[values], s.count, s.sum, s.zero_count, s.min, s.max, dict(s.buckets)) for values, s in self._series.items()]
        points = []
        for values, keys, count, total, zero_count, low, high, buckets in snapshot:
            scale, offset, counts = _downscale(buckets)
            points.append(
                ExponentialHistogramDataPoint(
                    attributes=dict(zip(keys, values, strict=True)),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    count=count,
                    sum=total,
                    scale=scale,
                    zero_count=zero_count,
                    positive=Buckets(offset=offset, bucket_counts=counts),
                    negative=Buckets(offset=0, bucket_counts=[]),
                    flags=0,
                    min=low,
                    max=high,
                )
            )
        return points

    def counts(self) -> dict[tuple, int]:
        """Attribute values of each series → values recorded so far (a copy, for the agent's coverage check)."""
        self._fold()
        with self._lock:
            return {values: series.count for values, series in self._series.items()}

    def metric(self, start_ns: int, now_ns: int) -> Metric | None:
        points = self.points(start_ns, now_ns)
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=ExponentialHistogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE),
        )


def _downscale(buckets: dict[int, int]) -> tuple[int, int, list[int]]:
    """(scale, offset, contiguous counts) with at most MAX_BUCKETS buckets."""
    scale = SCALE
    if not buckets:
        return scale, 0, []
    while max(buckets) - min(buckets) + 1 > MAX_BUCKETS:
        merged: dict[int, int] = {}
        for index, count in buckets.items():
            merged[index >> 1] = merged.get(index >> 1, 0) + count
        buckets = merged
        scale -= 1
    low = min(buckets)
    counts = [0] * (max(buckets) - low + 1)
    for index, count in buckets.items():
        counts[index - low] = count
    return scale, low, counts


class LeanCounter:
    def __init__(self, name: str, unit: str, description: str = ""):
        self.name = name
        self.unit = unit
        self.description = description
        self._totals: dict[tuple, float] = {}
        self._keys: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        _INSTRUMENTS.add(self)

    def add(self, amount: float, values: tuple, keys: tuple) -> None:
        with self._lock:
            total = self._totals.get(values)
            if total is None:
                self._keys[values] = keys
                total = 0.0
            self._totals[values] = total + amount

    def add_each(self, items, keys: tuple) -> None:
        """``add(amount, values, keys)`` for each ``(amount, values)`` of ``items``, under one lock."""
        with self._lock:
            totals = self._totals
            for amount, values in items:
                total = totals.get(values)
                if total is None:
                    self._keys[values] = keys
                    total = 0.0
                totals[values] = total + amount

    def metric(self, start_ns: int, now_ns: int) -> Metric | None:
        with self._lock:
            snapshot = [(values, self._keys[values], total) for values, total in self._totals.items()]
        if not snapshot:
            return None
        points = [
            NumberDataPoint(attributes=dict(zip(keys, values, strict=True)), start_time_unix_nano=start_ns, time_unix_nano=now_ns, value=total)
            for values, keys, total in snapshot
        ]
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Sum(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE, is_monotonic=True),
        )


class AttributesCounter:
    """SDK-shaped ``add(amount, attributes_dict)`` onto a :class:`LeanCounter`, for call
    sites whose attribute set varies (an optional route), without the SDK's per-call machinery."""

    __slots__ = ("lean",)

    def __init__(self, lean: LeanCounter):
        self.lean = lean

    def add(self, amount: float, attributes: dict | None = None) -> None:
        attributes = attributes or {}
        self.lean.add(amount, tuple(attributes.values()), tuple(attributes))


class LeanMetrics:
    """A set of lean instruments, exported through an SDK ``MeterProvider``'s readers."""

    def __init__(self, scope_name: str, scope_version: str | None = None):
        self.scope = InstrumentationScope(scope_name, scope_version)
        self.start_ns = time.time_ns()
        self._instruments: list[LeanHistogram | LeanCounter] = []

    def histogram(self, name: str, unit: str, description: str = "") -> LeanHistogram:
        instrument = LeanHistogram(name, unit, description)
        self._instruments.append(instrument)
        return instrument

    def counter(self, name: str, unit: str, description: str = "") -> LeanCounter:
        instrument = LeanCounter(name, unit, description)
        self._instruments.append(instrument)
        return instrument

    def scope_metrics(self) -> ScopeMetrics | None:
        now_ns = time.time_ns()
        metrics = [m for m in (i.metric(self.start_ns, now_ns) for i in self._instruments) if m is not None]
        if not metrics:
            return None
        return ScopeMetrics(scope=self.scope, metrics=metrics, schema_url="")

    def merge_into(self, data: MetricsData | None, resource) -> MetricsData | None:
        scope_metrics = self.scope_metrics()
        if scope_metrics is None:
            return data
        if data is None or not data.resource_metrics:
            return MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope_metrics], schema_url="")])
        first = data.resource_metrics[0]
        # Same scope as the SDK meter of that name: one ScopeMetrics (the OTLP encoder keys by scope).
        scopes = list(first.scope_metrics)
        for n, existing in enumerate(scopes):
            if existing.scope.name == self.scope.name:
                scopes[n] = ScopeMetrics(scope=existing.scope, metrics=[*existing.metrics, *scope_metrics.metrics], schema_url=existing.schema_url)
                break
        else:
            scopes.append(scope_metrics)
        merged = ResourceMetrics(resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url)
        return MetricsData(resource_metrics=[merged, *data.resource_metrics[1:]])

    def attach(self, meter_provider, readers, resource) -> None:
        """Merge these metrics into every collection of ``readers`` (registered on ``meter_provider``)."""

        def current_resource():
            # the SDK replaces its resource in a forked child (new service.instance.id)
            return meter_provider_resource(meter_provider) or resource

        for reader in readers:
            original = reader_collect(reader)
            if original is None:
                continue

            def collect(reader_, timeout_millis=10_000, _original=original):
                return self.merge_into(_original(reader_, timeout_millis=timeout_millis), current_resource())

            set_reader_collect(reader, collect)
