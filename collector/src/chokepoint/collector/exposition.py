"""``/metrics``: a prometheus-client custom collector reading the store at scrape time.

Usage::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))           # optional findings=callable
    body = generate_latest(registry)

Every family name comes from ``catalog.py``.  What is exported:
- counters (cumulative since the collector started: closed buckets are folded into
  running totals, the open bucket is added at scrape time): requests, request errors,
  dependency calls/errors, pool timeouts, breaker transitions/calls, breakdown seconds,
  ingest spans/points/rejected/dropped;
- histograms derived from the cumulative sketches with latency buckets
  ``LATENCY_BUCKETS_S`` (1 ms .. 60 s, 1-2.5-5 steps): request, dependency, pool wait,
  GC pause, event-loop lag.  A bucket count is the number of sketch values whose bin
  representative is <= the bound (so a bound is honoured within the sketch's 1 %);
- gauges (the newest value seen): pool used/max/pending, breaker state, consumer lag,
  time lag and status, process CPU (use and run-queue wait)/RSS/threads, and ``chokepoint_bottleneck_score`` when
  a ``findings`` callable (returning CONTRACT.md finding dicts) is given.
The collector reads a consistent snapshot taken under the store lock; a failing
``findings`` callable is logged and only the score family is left out of that scrape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric as PromMetric

from chokepoint.collector import catalog as cat
from chokepoint.collector.catalog import LAG_STATUSES
from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import Store

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0)


def _le(b: float) -> str:
    return "+Inf" if b == math.inf else repr(float(b))


def histogram_buckets(sketch: Sketch, bounds: Iterable[float] = LATENCY_BUCKETS_S) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs of a sketch, ending with ``+Inf`` = total count."""
    bounds = list(bounds)
    counts = sketch.cumulative_counts(bounds)
    return [(_le(b), float(c)) for b, c in zip(bounds, counts, strict=False)] + [("+Inf", float(sketch.count))]


def _hist(metric: cat.Metric) -> HistogramMetricFamily:
    return HistogramMetricFamily(metric.name, metric.help, labels=list(metric.labels), unit="")


def _counter(metric: cat.Metric) -> CounterMetricFamily:
    return CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))


def _gauge(metric: cat.Metric) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))


class StoreCollector:
    """Yields the catalog's metric families from a ``Store`` (duck-typed ``collect()``)."""

    def __init__(self, store: Store, findings: Callable[[], list[dict]] | None = None) -> None:
        self.store = store
        self.findings = findings

    def describe(self) -> Iterable[PromMetric]:
        # no describe-time families: registering must not run a full collect
        return []

    def collect(self) -> Iterable[PromMetric]:
        totals, latest = self.store.exposition_snapshot()

        req_h, req_c, req_e = _hist(cat.REQUEST_DURATION), _counter(cat.REQUESTS), _counter(cat.REQUEST_ERRORS)
        for (svc, route), agg in sorted(totals.routes.items()):
            labels = [svc, route]
            req_h.add_metric(labels, histogram_buckets(agg.sketch), agg.sketch.sum)
            req_c.add_metric(labels, agg.count)
            req_e.add_metric(labels, agg.errors)
        yield from (req_h, req_c, req_e)

        dep_h, dep_c, dep_e = _hist(cat.DEPENDENCY_DURATION), _counter(cat.DEPENDENCY_CALLS), _counter(cat.DEPENDENCY_ERRORS)
        for (svc, kind, target), agg in sorted(totals.deps.items()):
            labels = [svc, kind, target]
            dep_h.add_metric(labels, histogram_buckets(agg.sketch), agg.sketch.sum)
            dep_c.add_metric(labels, agg.count)
            dep_e.add_metric(labels, agg.errors)
        yield from (dep_h, dep_c, dep_e)

        used, pmax, pending = _gauge(cat.POOL_USED), _gauge(cat.POOL_MAX), _gauge(cat.POOL_PENDING)
        for (svc, kind, name), p in sorted(latest.pools.items()):
            labels = [svc, kind, name]
            if p.used is not None:
                used.add_metric(labels, p.used)
            if p.max is not None:
                pmax.add_metric(labels, p.max)
            if p.pending is not None:
                pending.add_metric(labels, p.pending)
        wait, timeouts = _hist(cat.POOL_WAIT), _counter(cat.POOL_TIMEOUTS)
        for (svc, kind, name), p in sorted(totals.pools.items()):
            labels = [svc, kind, name]
            if p.wait.count:
                wait.add_metric(labels, histogram_buckets(p.wait), p.wait.sum)
            timeouts.add_metric(labels, p.timeouts)
        yield from (used, pmax, pending, wait, timeouts)

        state = _gauge(cat.BREAKER_STATE)
        for (svc, name), b in sorted(latest.breakers.items()):
            if b.state is not None:
                state.add_metric([svc, name], b.state)
        transitions, calls = _counter(cat.BREAKER_TRANSITIONS), _counter(cat.BREAKER_CALLS)
        for (svc, name), b in sorted(totals.breakers.items()):
            for to_state, n in sorted(b.transitions.items()):
                transitions.add_metric([svc, name, to_state], n)
            for result, n in sorted(b.calls.items()):
                calls.add_metric([svc, name, result], n)
        yield from (state, transitions, calls)

        lag, time_lag, status = _gauge(cat.CONSUMER_LAG), _gauge(cat.CONSUMER_TIME_LAG), _gauge(cat.CONSUMER_STATUS)
        for row in self.store.consumer_lag():
            labels = [row["group"], row["topic"], str(row["partition"])]
            if row["lag"] is not None:
                lag.add_metric(labels, row["lag"])
            if row["time_lag_s"] is not None:
                time_lag.add_metric(labels, row["time_lag_s"])
            status.add_metric(labels, LAG_STATUSES.index(row["status"]))
        yield from (lag, time_lag, status)

        cpu, rq_wait, rss, threads = _gauge(cat.PROCESS_CPU), _gauge(cat.PROCESS_CPU_RUN_QUEUE_WAIT), _gauge(cat.PROCESS_RSS), _gauge(cat.THREADS)
        for svc, r in sorted(latest.runtime.items()):
            if r.cpu is not None:
                cpu.add_metric([svc], r.cpu)
            if r.run_queue_wait is not None:
                rq_wait.add_metric([svc], r.run_queue_wait)
            if r.rss is not None:
                rss.add_metric([svc], r.rss)
            if r.threads is not None:
                threads.add_metric([svc], r.threads)
        gc, loop = _hist(cat.GC_PAUSE), _hist(cat.EVENT_LOOP_LAG)
        for svc, r in sorted(totals.runtime.items()):
            if r.gc_pause.count:
                gc.add_metric([svc], histogram_buckets(r.gc_pause), r.gc_pause.sum)
            if r.loop_lag.count:
                loop.add_metric([svc], histogram_buckets(r.loop_lag), r.loop_lag.sum)
        yield from (cpu, rq_wait, rss, threads, gc, loop)

        breakdown = _counter(cat.BREAKDOWN_TIME)
        for (svc, route), bd in sorted(totals.breakdown.items()):
            for component, seconds in sorted(bd.all.items()):
                breakdown.add_metric([svc, route, component], seconds)
        yield breakdown

        if self.findings is not None:
            score = _gauge(cat.BOTTLENECK_SCORE)
            try:
                for f in self.findings():
                    score.add_metric([str(f.get("service", "")), str(f.get("kind", "")), str(f.get("target", ""))], float(f.get("score", 0.0)))
            except Exception:  # the analyzer failing must not take /metrics down with it
                log.exception("findings for chokepoint_bottleneck_score failed; family left out of this scrape")
            else:
                yield score

        spans, points, rejected, dropped = self.store.counters_snapshot()
        c_spans, c_points = _counter(cat.INGEST_SPANS), _counter(cat.INGEST_POINTS)
        for protocol, n in sorted(spans.items()):
            c_spans.add_metric([protocol], n)
        for protocol, n in sorted(points.items()):
            c_points.add_metric([protocol], n)
        c_rej = _counter(cat.INGEST_REJECTED)
        for (protocol, reason), n in sorted(rejected.items()):
            c_rej.add_metric([protocol, reason], n)
        c_drop = _counter(cat.INGEST_DROPPED)
        for reason, n in sorted(dropped.items()):
            c_drop.add_metric([reason], n)
        yield from (c_spans, c_points, c_rej, c_drop)
