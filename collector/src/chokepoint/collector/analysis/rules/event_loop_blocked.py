"""``event_loop_blocked``: blocking calls inside async code delay every coroutine.

The loop's own evidence: its scheduling lag (p99 past ``loop_lag_p99_ms``), how often its
timer found it busy (late by more than ``loop_late_s``), the share of wall time it ran
callbacks without yielding (``loop_busy``) and its longest single stall.  A request's
server span starts only once the loop gets to it, so server spans can look fast while
clients wait: the rule fires in a degraded service, **or** when the loop is busy at least
``loop_busy_fraction`` of the time with stalls past the lag threshold — then throughput is
capped near 1 / stall, and the evidence says how close the service runs to that cap.  A
loop that lags while it is idle (a busy host leaving it without a CPU now and then) and
requests stay fast is no bottleneck.  On a CPU-starved host the loop's thread also waits
for a CPU in the middle of its callbacks, which reads as busy and late: the busy share and
the late share are taken as the process's share of its CPU demand
(× used / (used + run-queue wait), ``host_factor``).

``explained``: the p99 stall relative to the worst request weighted by how often the loop
is found busy, or the busy share itself; ``strength``: the lag p99 / 500 ms (the longest
stall / 500 ms when the loop is busy past ``loop_busy_fraction``).
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import RuntimeStats, WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.EVENT_LOOP_BLOCKED


def host_factor(rt: RuntimeStats) -> float:
    """The share of the process's CPU demand it got: 1 on a host with CPU to spare."""
    if rt.cpu is None or rt.run_queue_wait is None or rt.cpu + rt.run_queue_wait <= 0:
        return 1.0
    return rt.cpu / (rt.cpu + rt.run_queue_wait) if rt.run_queue_wait > 0.05 else 1.0


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for svc, rt in snap.runtime.items():
        stall_ms = round(1000.0 * rt.loop_stall_max_s, 1) if rt.loop_stall_max_s else 0.0
        lag_p99 = rt.loop_lag_p99_ms if rt.loop_lag_count else 0.0
        if max(lag_p99, stall_ms) < cfg.loop_lag_p99_ms:
            continue  # (the longest stall alone passes the gate only with a busy loop, below)
        sv = snap.service(svc)
        factor = host_factor(rt)
        busy = (rt.loop_busy or 0.0) * factor
        loop_bound = busy >= cfg.loop_busy_fraction and sv.requests > 0
        if lag_p99 < cfg.loop_lag_p99_ms and not loop_bound:
            continue  # one long stall in a loop that is mostly idle: no blocking pattern
        if not sv.degraded and not loop_bound:
            continue  # a loop lag the requests do not feel (an idle service on a busy host) is no bottleneck
        late_fraction = rt.loop_late_fraction * factor
        stall = max(lag_p99, stall_ms)
        cap_rps = round(1000.0 / stall, 1)
        rps = round(sv.requests / snap.window_s, 1)
        busy_text = f", busy {100 * busy:.0f}% of the time" if rt.loop_busy is not None else ""
        cap_text = f"; one stall at a time caps it near {cap_rps:g} requests/s (now {rps:g}/s)" if stall_ms or loop_bound else ""
        yield Candidate(
            KIND,
            svc,
            "event_loop",
            # a p99 stall as long as the worst request explains it only if the loop is found busy
            # often: rare stalls (a busy host leaving an idle loop without a CPU now and then)
            # line up with slow requests without causing them
            explained=max(
                min(1.0, lag_p99 / max(sv.worst_p99_ms, lag_p99, 1.0)) * min(1.0, late_fraction / cfg.loop_busy_fraction),
                min(1.0, 2.0 * late_fraction),
                busy if loop_bound else 0.0,
            ),
            # the p99 lag, not the single longest stall (one descheduling on a busy host can last a second)
            strength=min(1.0, (stall if loop_bound else lag_p99) / 500.0),
            summary=f"The asyncio event loop lags {lag_p99:.0f} ms (p99){busy_text}"
            + (f", longest stall {stall_ms:.0f} ms" if stall_ms else "")
            + f": blocking calls run on the loop{cap_text}",
            evidence={
                "event_loop_lag_p99_ms": lag_p99,
                "loop_late_fraction": round(rt.loop_late_fraction, 3),
                "loop_busy": round(rt.loop_busy, 3) if rt.loop_busy is not None else None,
                "host_cpu_factor": round(factor, 3) if factor < 1.0 else None,
                "loop_stall_max_ms": stall_ms or None,
                "throughput_cap_rps": cap_rps,
                "rps": rps,
                "worst_route": sv.worst_route,
                "worst_p99_ms": sv.worst_p99_ms,
            },
            recommendation=recommendation(KIND),
            specificity=0.05,
        )
