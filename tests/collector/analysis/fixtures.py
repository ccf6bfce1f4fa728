"""Hand-built ``WindowSnapshot`` fixtures for the per-rule tables, and what a rule yields, as rows.

Each table row pins a rule's whole output for one snapshot: per candidate its service,
target, ``explained``, ``strength`` (rounded to 3 places), ``severity`` and every evidence
value — the way Burrow's evaluator tests pin a status per offset series.
"""

from __future__ import annotations

from chokepoint.collector.analysis.candidate import Candidate
from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.snapshot import DependencyStats, RouteStats, ServiceSnapshot, WindowSnapshot

NOW = 1_800_000_000.0
SVC = "shop"


def service(
    name: str = SVC, degraded: bool = True, shares: dict | None = None, worst: tuple[str, float] = ("/orders", 400.0), requests: int = 600, **kw
) -> ServiceSnapshot:
    """A service with ``requests`` in the window; ``shares`` = the slow requests' time by component."""
    return ServiceSnapshot(
        name,
        requests=requests,
        request_time_s=kw.pop("request_time_s", requests * 0.2),
        degraded=degraded,
        slow_share=dict(shares or {}),
        has_breakdown=shares is not None,
        worst_route=worst[0],
        worst_p99_ms=worst[1],
        **kw,
    )


def route(count: int, p99_ms: float, baseline_p99_ms: float | None = None, time_s: float | None = None, queue_s: float = 0.0) -> RouteStats:
    return RouteStats(
        count=count,
        time_s=time_s if time_s is not None else count * p99_ms / 2000.0,
        p50_ms=p99_ms / 2,
        p99_ms=p99_ms,
        baseline_p99_ms=baseline_p99_ms,
        queue_s=queue_s,
    )


def dep(count: int, p99_ms: float, p50_ms: float | None = None, time_s: float | None = None, errors: int = 0, statement: bool = True) -> DependencyStats:
    p50 = p50_ms if p50_ms is not None else p99_ms / 2
    return DependencyStats(
        count=count, time_s=time_s if time_s is not None else count * p50 / 1000.0, p50_ms=p50, p99_ms=p99_ms, errors=errors, statement=statement
    )


def snapshot(services=(), window_s: float = 60.0, config: AnalyzerConfig | None = None, **fields) -> WindowSnapshot:
    return WindowSnapshot(now=NOW, window_s=window_s, config=config or AnalyzerConfig(window_s=window_s), services={s.name: s for s in services}, **fields)


def rows(candidates) -> list[dict]:
    out = []
    for c in candidates:
        assert isinstance(c, Candidate)
        out.append(
            {
                "service": c.service,
                "target": c.target,
                "explained": round(c.explained, 3),
                "strength": round(c.strength, 3),
                "severity": c.severity,
                "evidence": c.evidence,
            }
        )
    return out
