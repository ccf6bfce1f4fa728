"""The bottleneck analyzer's former module: the names now live in ``chokepoint.collector.analysis``.

Kept so ``from chokepoint.collector.analyzer import Analyzer, AnalyzerConfig`` goes on working.
"""

from __future__ import annotations

from chokepoint.collector.analysis import Analyzer, AnalyzerConfig, AnalyzerSource, Candidate, Finding, severity_of

__all__ = ["Analyzer", "AnalyzerConfig", "AnalyzerSource", "Candidate", "Finding", "severity_of"]
