"""Runs the bottleneck analyzer for the service and serves its findings to the API and ``/metrics``.

The service loop calls :meth:`BottleneckFindings.refresh` every ``analyze_interval_s``
(default 5 s, ``CHOKEPOINT_ANALYZE_S``): one ``Analyzer.analyze()`` over the default
window (``analyzer_window_s``, default 60 s, ``CHOKEPOINT_ANALYZER_WINDOW_S``; baseline
``analyzer_baseline_s``, default 300 s, ``CHOKEPOINT_ANALYZER_BASELINE_S``), whose result is kept (``latest()``) for ``chokepoint_bottleneck_score``.
``GET /api/v1/bottlenecks`` with the default window runs that same long-lived analyzer
afresh, so "since" (when a finding started to hold) is remembered across calls.  Another ``window`` runs an
analyzer kept for that window (the ``MAX_WINDOW_ANALYZERS`` most recently asked for), so "since" and the
ranking's hysteresis hold for it too.  Findings are JSON-ready dicts (``Finding.to_dict()``).

Rules that raise are counted per kind in one ``RuleErrors`` shared by every analyzer this
object runs; :meth:`BottleneckFindings.collect` yields them as
``chokepoint_analyzer_rule_errors_total{kind}`` (the service registers the object with its
Prometheus registry).

Thread-safe (one lock around the analyzer).

Usage::

    findings = BottleneckFindings(store)                       # default windows
    findings = BottleneckFindings(store, window_s=10, baseline_s=60)   # short windows (tests)
    findings.refresh()                 # from the service loop
    findings.for_window(60)            # from the API
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from prometheus_client.core import CounterMetricFamily

from chokepoint.collector.analysis import Analyzer, AnalyzerConfig, RuleErrors
from chokepoint.collector.catalog import ANALYZER_RULE_ERRORS

log = logging.getLogger(__name__)

MAX_WINDOW_ANALYZERS = 8  # other windows kept (each remembers "since" and its hysteresis)


class BottleneckFindings:
    def __init__(self, store, window_s: float | None = None, baseline_s: float | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._latest: list[dict] = []
        config = AnalyzerConfig()
        if window_s is not None:
            config.window_s = float(window_s)
        if baseline_s is not None:
            config.baseline_window_s = float(baseline_s)
        self.rule_errors = RuleErrors()
        self._analyzer = Analyzer(store, config, self.rule_errors)
        self._by_window: dict[float, Analyzer] = {}  # other windows asked for, most recently used last

    @property
    def default_window_s(self) -> float:
        return float(self._analyzer.config.window_s)

    def refresh(self) -> list[dict]:
        """Run the analyzer over the default window; keep and return its findings."""
        with self._lock:
            try:
                self._latest = [f.to_dict() for f in self._analyzer.analyze()]
            except Exception:
                log.exception("bottleneck analysis failed")
            return list(self._latest)

    def latest(self) -> list[dict]:
        with self._lock:
            return list(self._latest)

    def for_window(self, window_s: float) -> list[dict]:
        """Findings over ``window_s`` (the kept result for the default window)."""
        if abs(window_s - self.default_window_s) < 1e-9:
            return self.refresh()  # fresh, and "since" is remembered by the long-lived analyzer
        with self._lock:
            analyzer = self._by_window.pop(window_s, None)
            if analyzer is None:
                analyzer = Analyzer(self.store, dataclasses.replace(self._analyzer.config, window_s=window_s), self.rule_errors)
            self._by_window[window_s] = analyzer  # most recently used last
            while len(self._by_window) > MAX_WINDOW_ANALYZERS:
                self._by_window.pop(next(iter(self._by_window)))
            return [f.to_dict() for f in analyzer.analyze()]

    def describe(self):
        return []

    def collect(self):
        """``chokepoint_analyzer_rule_errors_total{kind}`` (Prometheus collector protocol)."""
        family = CounterMetricFamily(ANALYZER_RULE_ERRORS.name, ANALYZER_RULE_ERRORS.help, labels=list(ANALYZER_RULE_ERRORS.labels))
        for kind, n in sorted(self.rule_errors.counts().items()):
            family.add_metric([kind], n)
        yield family
