"""The bottleneck analyzer: names the likely bottleneck, with evidence and the fix.

Usage::

    analyzer = Analyzer(store)                                  # AnalyzerConfig() defaults
    analyzer = Analyzer(store, AnalyzerConfig(window_s=10))     # short windows (tests)
    findings = analyzer.analyze()                               # Finding objects, best first
    analyzer.errors.counts()                                    # {kind: rule runs that raised}

Every ``interval_s`` the service calls ``Analyzer.analyze()``: it builds one
``WindowSnapshot`` of the recent window (``window_s``, default 60 s) and a baseline before
it (``snapshot.build_snapshot``), runs one pure rule per finding kind (``rules.RULES``,
the vocabulary of ``catalog.FINDING_KINDS``), ranks the candidates (``ranking``) and
returns ``Finding`` objects, best first, each with the time since it has held.

Layout: ``config`` (``AnalyzerConfig``, the thresholds), ``snapshot`` (the typed window),
``cpu`` (CPU demand), ``rules/<kind>`` (one module per kind), ``candidate`` (``Candidate``,
``Finding``, the score and severity), ``ranking`` (demotions, order), ``errors`` (rules
that raise: logged once and counted as ``chokepoint_analyzer_rule_errors_total{kind}``).

How a finding is scored
-----------------------
Each rule produces candidates with two numbers in 0..1:

- ``explained``: how much of the **slow requests' time** the cause accounts for, from the
  per-request breakdown the agent reports for 100% of requests (components ``self``,
  ``db``, ``pool_wait``, ``http:<host>``, ``kafka``, ``queue``).  When a service sends no
  breakdown (a foreign OpenTelemetry SDK), dependency time relative to request time is
  used instead.  Time queued for a worker (``queue``) is a consequence of what the busy
  workers do, so causes are credited with their share of the *in-worker* time
  (``ServiceSnapshot.busy_share``); the worker pool itself explains the queueing only in
  proportion to the app's own (``self``) time, i.e. waits the agent cannot see.
- ``strength``: how far the direct evidence is past its threshold (pool wait p99 vs
  200 ms, CPU demand vs one core, loop lag vs 500 ms, lag growth, ...).

``score = 0.55 * explained + 0.45 * strength`` plus a small ``specificity`` bonus for
the more specific explanation of the same symptom (an external call inside a
transaction explains an exhausted pool better than "the pool is too small"; a missing
timeout or a retry loop explains a slow dependency's damage better than "the
dependency is slow"; a hot endpoint explains a busy worker pool).  Severity:
``critical`` ≥ 0.7, ``warning`` ≥ 0.4, else ``info``.  Rules only fire past their gates,
so a healthy service under light load yields nothing above ``info``.  A CPU-bound
process is named ahead of the loop lag, busy workers and hot route it causes, and a
blocked loop ahead of the threadpool it starves (``ranking.demote_symptoms``).  An
``info`` never outranks a ``warning``; across runs a finding dwells a little after its
rule stops firing and the top finding keeps its place against near ties
(``ranking.Hysteresis``), so a steady bottleneck does not flicker.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from chokepoint.collector.analysis.candidate import Candidate, Finding, severity_of
from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.errors import RuleErrors
from chokepoint.collector.analysis.ranking import Hysteresis, rank
from chokepoint.collector.analysis.rules import RULES
from chokepoint.collector.analysis.snapshot import AnalyzerSource, WindowSnapshot, build_snapshot
from chokepoint.collector.catalog import FINDINGS_BY_KIND

__all__ = ["Analyzer", "AnalyzerConfig", "AnalyzerSource", "Candidate", "Finding", "RuleErrors", "WindowSnapshot", "run_rules", "severity_of"]


def run_rules(snap: WindowSnapshot, errors: RuleErrors | None = None) -> list[Candidate]:
    """Every rule over ``snap``; a rule that raises is counted in ``errors`` and the others still run."""
    candidates: list[Candidate] = []
    for kind, rule in RULES.items():
        try:
            candidates.extend(rule(snap))
        except Exception:  # one broken rule must not hide the others
            if errors is not None:
                errors.record(kind)
    return candidates


class Analyzer:
    """Runs the rules over a source; remembers since when each finding holds."""

    def __init__(self, source: AnalyzerSource, config: AnalyzerConfig | None = None, errors: RuleErrors | None = None) -> None:
        self.source = source
        self.config = config or AnalyzerConfig()
        self.errors = errors if errors is not None else RuleErrors()
        self._since: dict[tuple[str, str, str], float] = {}
        self._hysteresis = Hysteresis(self.config.dwell_s if self.config.dwell_s is not None else self.config.window_s / 4)
        self.latest: list[Finding] = []
        self.last_run_s: float | None = None

    def analyze(self) -> list[Finding]:
        snap = build_snapshot(self.source, self.config)
        now = snap.now
        ranked = self._hysteresis.apply(rank(run_rules(snap, self.errors)), now)
        self._since = {c.key: self._since.get(c.key, now) for c in ranked}
        findings = [
            Finding(
                kind=c.kind,
                service=c.service,
                target=c.target,
                score=c.score,
                severity=severity_of(c.score),
                since=datetime.fromtimestamp(self._since[c.key], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                summary=c.summary,
                evidence=c.evidence,
                recommendation=c.recommendation or FINDINGS_BY_KIND[c.kind].recommendation,
            )
            for c in ranked
        ]
        self.latest = findings
        self.last_run_s = time.time()
        return findings
