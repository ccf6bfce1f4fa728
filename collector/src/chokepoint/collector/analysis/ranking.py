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
"""

from __future__ import annotations

from chokepoint.collector.analysis.candidate import Candidate
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
        if c.key not in best or c.score > best[c.key].score:
            best[c.key] = c
    return best


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Demote symptoms, keep the best candidate per finding, order best first."""
    demote_symptoms(candidates)
    return sorted(best_per_finding(candidates).values(), key=lambda c: (-c.score, c.kind, c.service, c.target))
