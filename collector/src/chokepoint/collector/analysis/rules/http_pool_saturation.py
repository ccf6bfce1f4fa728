"""``http_pool_saturation``: requests wait for an outbound HTTP connection while the dependency answers fast.

An HTTP client's connection pool (urllib3/requests ``HTTPConnectionPool`` with
``block=True``, httpx ``Limits``) of kind ``http`` that is waited on (``pools.waited_on``)
while the calls themselves, once they have a connection, are faster than the wait: the
client pool, not the dependency, is the bottleneck.  The dependency is the HTTP target of
the pool's name (``scheme://host:port``, ``httpx:<origin>``, ``host:port`` or ``host``: the
target named ``host:port`` or ``host``), else the service's slowest HTTP target.  A client
call's span and duration include the wait for its connection, so the calls' own time is
the dependency's p99 minus the wait p99.
``explained``: the pool's part of the slow requests' ``pool_wait`` time; ``strength``:
wait p99 / 200 ms (+0.2 with timeouts).
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.rules.pools import pool_wait_share, waited_on
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.HTTP_POOL_SATURATION


def target_names(pool_name: str) -> list[str]:
    """HTTP dependency targets a client pool's name may stand for, most specific first."""
    rest = pool_name.removeprefix("httpx:")
    rest = rest.split("://", 1)[1] if "://" in rest else rest
    hostport = rest.split("/", 1)[0]
    return [pool_name, hostport, hostport.rsplit(":", 1)[0]]


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for p in snap.pools:
        if p.kind != "http" or not waited_on(p, cfg):
            continue
        svc = p.service
        sv = snap.service(svc)
        deps = dict(snap.deps_of(svc, "http"))
        dep = next((deps[n] for n in target_names(p.name) if n in deps), None) or max(deps.values(), key=lambda d: d.p99_ms, default=None)
        # a client span starts before its connection is checked out: its time includes the wait
        dep_p99 = max(dep.p99_ms - p.wait_p99_ms, 0.0) if dep is not None else 0.0
        if dep_p99 and p.wait_p99_ms < dep_p99:
            continue  # the calls, not the wait for a connection, dominate: external_dependency_slow's business
        used = p.used_peak if p.used_peak is not None else p.used
        mx, pending = p.max, (p.pending_peak if p.pending_peak is not None else p.pending) or 0.0
        size = f"pool {used:.0f}/{mx:.0f} connections busy at peak, {pending:.0f} waiting at peak; " if used is not None and mx else ""
        yield Candidate(
            KIND,
            svc,
            p.name,
            explained=pool_wait_share(snap, p) if sv.has_breakdown else min(1.0, p.wait_p99_ms / max(sv.worst_p99_ms, 1.0)),
            strength=min(1.0, p.wait_p99_ms / 200.0) + (0.2 if p.timeouts > 0 else 0.0),
            summary=f"Requests wait {p.wait_p99_ms:.0f} ms (p99) for an outbound connection to {p.name}; {size}the calls themselves take {dep_p99:.0f} ms (p99)",
            evidence={
                "pool_used": used,
                "pool_max": mx,
                "pending": pending,
                "wait_p99_ms": p.wait_p99_ms,
                "dependency_p99_ms": dep_p99,
                "timeouts": p.timeouts,
            },
            recommendation=recommendation(KIND, f"The client pool holds {mx:.0f} connections: try {int(mx * 2)} (maxsize / max_connections)." if mx else ""),
        )
