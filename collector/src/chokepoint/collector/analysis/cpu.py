"""CPU demand: what a process *wants* of the CPU, not only what it *got*.

``process.cpu.utilization`` is the CPU a process got; on a host shared with the load
generator, the database and other services a CPU-bound process gets less than a core.
The agent also reports ``chokepoint.runtime.cpu.run_queue_wait``: the time its threads
were runnable but waiting for a CPU.  ``demand = used + waited`` (fractions of one core);
a CPython process whose demand is near one core is CPU-bound (the GIL lets one thread
compute at a time) even when the box gives it 0.6 core.  Both are means over the latest
third of the window (``RuntimeStats``).

A process is CPU-bound (``CpuDemand.bound``) on utilization ≥ ``cpu_busy``; on demand ≥
``cpu_busy`` when it uses at least ``cpu_demand_min_used`` itself (a process that mostly
sleeps and waits a little at each wake-up is not CPU-bound); or, without the wait signal
(other SDKs, non-Linux), on utilization ≥ ``cpu_contended`` when the app's own time per
request is mostly CPU time.  (Threads contending for the GIL wake every switch interval
and wait for a CPU each time, so on a busy host the wait can exceed a core: it then
counts threads waiting.)
"""

from __future__ import annotations

from dataclasses import dataclass

from chokepoint.collector.analysis.snapshot import WindowSnapshot


@dataclass
class CpuDemand:
    """A service's CPU now, as fractions of one core (means over the latest third of the window)."""

    used: float | None  # process.cpu.utilization
    waited: float | None  # run-queue wait (None: the service does not report it)
    compute_ratio: float  # CPU seconds per request / own ("self") seconds per request
    bound: bool  # CPU-bound: see the module docstring

    @property
    def demand(self) -> float | None:
        return None if self.used is None else round(self.used + (self.waited or 0.0), 3)


def cpu_demand(snap: WindowSnapshot, svc: str) -> CpuDemand:
    cfg = snap.config
    rt = snap.runtime.get(svc)
    used = rt.cpu if rt is not None else None
    waited = rt.run_queue_wait if rt is not None else None
    if used is None:
        return CpuDemand(None, waited, 0.0, False)
    sv = snap.service(svc)
    requests = sv.breakdown_requests or sv.requests
    self_s = sv.self_time_s
    compute_ratio = (used * snap.window_s / requests) / (self_s / requests) if requests and self_s > 0 else 0.0
    bound = (
        used >= cfg.cpu_busy
        or (waited is not None and used >= cfg.cpu_demand_min_used and used + waited >= cfg.cpu_busy)
        # no wait signal (another SDK, not Linux): a process that gets half a core and whose
        # own time is mostly computing is CPU-bound on a shared host
        or (waited is None and used >= cfg.cpu_contended and compute_ratio >= cfg.compute_ratio)
    )
    return CpuDemand(used, waited, compute_ratio, bound)
