"""From candidates to a ranked list: demotions, one candidate per finding, order.

Demotions (``demote_symptoms``):

- A CPU-bound CPython process starves its own event loop and threadpool of the GIL:
  loop lag, busy workers and a "hot" route are then symptoms of the CPU, not causes
  (``CPU_SYMPTOM_KINDS``).
- A blocked event loop makes threadpool work look saturated: anyio keeps a worker's
  token until the loop takes the result back, and the route that blocks the loop takes
  most of the busy time (``LOOP_SYMPTOM_KINDS``).

Each demoted candidate loses ``SYMPTOM_PENALTY`` of specificity and says why in its
evidence (``cpu_bound`` / ``event_loop_blocked``).

Order: severity first (an ``info`` never outranks a ``warning`` or ``critical``), then score
(unclamped: ``Candidate.rank_score``).

Hysteresis (``Hysteresis``, kept by a long-lived ``Analyzer`` across runs), so the top
finding holds while its cause holds:

- minimum dwell: a ``warning``/``critical`` finding whose rule stops firing is kept, as it
  last was (evidence ``held_s``: seconds since its rule last fired), for ``dwell_s``
  (default a quarter of the window); after the fix it clears within the window;
- the incumbent top finding keeps the top place unless another one scores
  ``INCUMBENT_MARGIN`` more (the scores reported are the rules' own).
"""

from __future__ import annotations

from dataclasses import replace

from chokepoint.collector.analysis.candidate import SEVERITY_RANK, Candidate
from chokepoint.collector.catalog import Kind

LOOP_SYMPTOM_KINDS = (Kind.WORKER_POOL_SATURATION, Kind.HOT_ENDPOINT)
CPU_SYMPTOM_KINDS = (Kind.EVENT_LOOP_BLOCKED, Kind.WORKER_POOL_SATURATION, Kind.HOT_ENDPOINT)
SYMPTOM_PENALTY = 0.35
LOOP_BLOCKED_STRENGTH = 0.2  # loop lag p99 >= 100 ms


def demote_symptoms(candidates: list[Candidate]) -> None:
    cpu_bound = {c.service for c in candidates if c.kind == Kind.CPU_SATURATION}
    for c in candidates:
        if c.service in cpu_bound and c.kind in CPU_SYMPTOM_KINDS:
            c.specificity -= SYMPTOM_PENALTY
            c.evidence = {**c.evidence, "cpu_bound": True}
    blocked = {c.service for c in candidates if c.kind == Kind.EVENT_LOOP_BLOCKED and c.strength >= LOOP_BLOCKED_STRENGTH and c.service not in cpu_bound}
    for c in candidates:
        if c.service in blocked and c.kind in LOOP_SYMPTOM_KINDS:
            c.specificity -= SYMPTOM_PENALTY
            c.evidence = {**c.evidence, "event_loop_blocked": True}


def best_per_finding(candidates: list[Candidate]) -> dict[tuple[str, str, str], Candidate]:
    """One candidate per (kind, service, target): the best scored."""
    best: dict[tuple[str, str, str], Candidate] = {}
    for c in candidates:
        if c.key not in best or c.rank_score > best[c.key].rank_score:
            best[c.key] = c
    return best


INCUMBENT_MARGIN = 0.05


def order(candidates: list[Candidate], incumbent: tuple[str, str, str] | None = None) -> list[Candidate]:
    """Best first: severity, then score (the incumbent top finding with ``INCUMBENT_MARGIN`` more)."""

    def key(c: Candidate):
        bonus = INCUMBENT_MARGIN if c.key == incumbent else 0.0
        return (-SEVERITY_RANK[c.severity], -(round(c.rank_score, 3) + bonus), c.kind, c.service, c.target)

    return sorted(candidates, key=key)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Demote symptoms, keep the best candidate per finding, order best first."""
    demote_symptoms(candidates)
    return order(list(best_per_finding(candidates).values()))


class Hysteresis:
    """Minimum dwell and an incumbent margin across runs (see the module docstring)."""

    def __init__(self, dwell_s: float) -> None:
        self.dwell_s = dwell_s
        self._last: dict[tuple[str, str, str], tuple[Candidate, float]] = {}  # key -> (candidate, when its rule last fired)
        self._top: tuple[str, str, str] | None = None

    def apply(self, ranked: list[Candidate], now: float) -> list[Candidate]:
        fired = {c.key for c in ranked}
        for c in ranked:
            self._last[c.key] = (c, now)
        held = []
        for k, (c, seen) in list(self._last.items()):
            if k in fired:
                continue
            if now - seen > self.dwell_s or SEVERITY_RANK[c.severity] < SEVERITY_RANK["warning"]:
                del self._last[k]
                continue
            held.append(replace(c, evidence={**c.evidence, "held_s": round(now - seen, 1)}))
        out = order([*ranked, *held], incumbent=self._top)
        self._top = out[0].key if out else None
        return out
