"""``circuit_open``: a breaker is open or rejecting calls.

``explained``: rejected / calls through the breaker; ``strength``: 1 when open, 0.6 when
only rejecting.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.CIRCUIT_OPEN


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    for b in snap.breakers:
        if b.state != "open" and b.rejected <= 0:
            continue
        calls = b.calls or 1.0
        yield Candidate(
            KIND,
            b.service,
            b.name,
            explained=min(1.0, b.rejected / calls),
            strength=1.0 if b.state == "open" else 0.6,
            summary=f"Breaker '{b.name}' is {b.state}: {b.rejected:.0f} calls rejected, error rate {100 * b.error_rate:.0f}%",
            evidence={"state": b.state, "rejected": b.rejected, "error_rate": b.error_rate, "transitions": b.transitions},
            recommendation=recommendation(KIND),
            specificity=0.1,
        )
