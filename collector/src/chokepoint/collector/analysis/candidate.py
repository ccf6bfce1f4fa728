"""What a rule yields (``Candidate``) and what the analyzer reports (``Finding``).

A candidate carries two numbers in 0..1 and a bonus:

- ``explained``: how much of the **slow requests' time** the cause accounts for;
- ``strength``: how far the direct evidence is past its threshold;
- ``specificity``: a small bonus (or, after a demotion, a penalty) for the more specific
  explanation of the same symptom.

``score = 0.55 * explained + 0.45 * strength + specificity`` (clamped to 0..1).
Severity: ``critical`` ≥ 0.7, ``warning`` ≥ 0.4, else ``info``.  Ranking orders by the
unclamped sum (``rank_score``), so two causes that both reach 1.0 are still told apart by
their specificity.
"""

from __future__ import annotations

from dataclasses import dataclass

from chokepoint.collector.catalog import FINDINGS_BY_KIND

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass
class Finding:
    kind: str
    service: str
    target: str
    score: float
    severity: str
    since: str
    summary: str
    evidence: dict
    recommendation: str

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "service": self.service,
            "target": self.target,
            "score": self.score,
            "severity": self.severity,
            "since": self.since,
            "summary": self.summary,
            "evidence": self.evidence,
            "recommendation": self.recommendation,
        }


@dataclass
class Candidate:
    kind: str
    service: str
    target: str
    explained: float
    strength: float
    summary: str
    evidence: dict
    recommendation: str = ""
    specificity: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.service, self.target)

    @property
    def rank_score(self) -> float:
        """The score before clamping: what ranking orders by."""
        return 0.55 * clamp(self.explained) + 0.45 * clamp(self.strength) + self.specificity

    @property
    def score(self) -> float:
        return round(clamp(self.rank_score), 3)

    @property
    def severity(self) -> str:
        return severity_of(self.score)


def clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x != x else max(lo, min(hi, x))  # NaN -> lo


def severity_of(score: float) -> str:
    return "critical" if score >= 0.7 else "warning" if score >= 0.4 else "info"


def recommendation(kind: str, extra: str = "") -> str:
    """The catalog's recommendation for ``kind``, with a finding-specific sentence after it."""
    base = FINDINGS_BY_KIND[kind].recommendation
    return f"{base}. {extra}".strip() if extra else base
