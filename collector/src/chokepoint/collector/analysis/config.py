"""The analyzer's thresholds (``AnalyzerConfig``): defaults are for production traffic.

Tests shorten the windows (``AnalyzerConfig(window_s=10, baseline_window_s=60)``).  Each
threshold encodes what an engineer does under a load test (see the project's domain
notes): CPU near one core → processes, not threads; workers all busy with CPU low → more
threads; waiting for connections while queries are fast → a bigger pool; and so on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AnalyzerConfig:
    """Thresholds; defaults are for production traffic (tests shorten the windows)."""

    window_s: float = 60.0
    baseline_window_s: float = 300.0
    dwell_s: float | None = None  # a warning+ finding is kept this long after its rule stops firing (None: window_s / 4)
    min_requests: int = 20  # per service in the window before latency rules judge it
    degraded_p99_ms: float = 100.0  # a route is "slow" above this p99 ...
    degraded_ratio: float = 2.0  # ... or this many times its baseline p99
    pool_wait_p99_ms: float = 20.0
    pool_min_waits: int = 20  # checkouts in the window before a slow p99 alone means saturation
    worker_queue_wait_p99_ms: float = 20.0
    cpu_busy: float = 0.85  # fraction of one core: CPU used, or CPU demand (used + run-queue wait)
    cpu_demand_min_used: float = 0.3  # run-queue wait counts as demand only when the process uses this much itself
    cpu_contended: float = 0.5  # ... or this much used, when the app's own time is mostly computing
    compute_ratio: float = 0.25  # CPU seconds per request / self seconds per request
    cpu_low: float = 0.6
    loop_lag_p99_ms: float = 50.0
    loop_late_s: float = 0.010  # a timer this late found the loop busy (2 x the 5 ms GIL switch interval)
    loop_busy_fraction: float = 0.25  # found busy this often, the loop's p99 stall explains the slow requests in full
    slow_query_p99_ms: float = 50.0
    slow_query_min_calls: int = 5  # in the window: a one-off statement (schema, seed, batch) is no request bottleneck
    n_plus_one_queries: float = 8.0  # mean queries per request
    dependency_share: float = 0.3  # share of slow time for a slow dependency
    dependency_p99_ms: float = 100.0
    retry_ratio: float = 0.2  # retries per call
    hot_share: float = 0.6  # share of a service's busy time
    lag_min_messages: float = 100.0
    rss_growth_mb_per_min: float = 30.0
    gc_time_fraction: float = 0.05  # of CPU time (GC CPU seconds per second), or of wall time with the run-queue wait taken out
    warmup_s: float = 120.0  # a process's first minutes (imports, caches, pools, the agent's own start) are no memory pressure
    large_response_bytes: float = 100_000.0
    repeated_read_ratio: float = 0.5
    repeated_read_rps: float = 2.0
