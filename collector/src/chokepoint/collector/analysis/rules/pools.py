"""What the pool rules share: when a pool is a queue, and its part of the slow requests' wait.

A pool (``db``, ``redis``, ``http``) is *waited on* when its checkout wait p99 is past
``pool_wait_p99_ms`` over at least ``pool_min_waits`` checkouts, or callers are pending, or
checkouts time out (a few slow checkouts that open new connections are a pool warming
up, not a queue).  The breakdown has one ``pool_wait`` component for every pool of a
request; when several pools of a service are waited on, each is credited in proportion
to its wait p99.
"""

from __future__ import annotations

from chokepoint.collector.analysis.config import AnalyzerConfig
from chokepoint.collector.analysis.snapshot import PoolStats, WindowSnapshot

CONNECTION_POOL_KINDS = ("db", "redis", "http")


def waited_on(p: PoolStats, cfg: AnalyzerConfig) -> bool:
    pending, timeouts = p.pending or 0.0, p.timeouts
    if p.wait_p99_ms < cfg.pool_wait_p99_ms and pending < 1 and timeouts <= 0:
        return False
    return pending >= 1 or timeouts > 0 or p.wait_count >= cfg.pool_min_waits


def pool_wait_share(snap: WindowSnapshot, p: PoolStats) -> float:
    """This pool's part of the service's ``pool_wait`` share of the slow requests' in-worker time."""
    sv = snap.service(p.service)
    cfg = snap.config
    waited = [q for q in snap.pools if q.service == p.service and q.kind in CONNECTION_POOL_KINDS and waited_on(q, cfg)]
    total = sum(q.wait_p99_ms for q in waited)
    part = p.wait_p99_ms / total if len(waited) > 1 and total > 0 else 1.0
    return sv.busy_share("pool_wait") * part
