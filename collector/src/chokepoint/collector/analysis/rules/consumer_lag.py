"""``consumer_lag``: a Kafka consumer group falls behind.

Fires for a group and topic at least ``lag_min_messages`` behind whose lag grew over the
window or whose status (Burrow's evaluator, ``lag.py``) is WARN, STALL or STOP.
``strength``: the largest of lag / 10,000, time lag / 60 s, growth / (2 × the minimum),
and 0.4 for a bad status.

Filed under the consumer process's own service (the ``OTEL_SERVICE_NAME`` of the
instrumented consumer that reported the group), target ``group/topic``.  When only the
broker's view is known (the pull monitor, no instrumented consumer), the service is the
group's name and the summary says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

KIND = Kind.CONSUMER_LAG
BAD_STATUSES = frozenset({"WARN", "STALL", "STOP"})


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for g in snap.lags:
        bad_status = bool(BAD_STATUSES.intersection(g.statuses))
        if g.lag < cfg.lag_min_messages or (g.growth <= 0 and not bad_status):
            continue
        seen_by = "" if g.service else " (seen by the broker only: no instrumented consumer reports this group)"
        yield Candidate(
            KIND,
            g.service or g.group,
            f"{g.group}/{g.topic}",
            explained=0.5 if g.growth > 0 else 0.3,
            # a lag that keeps growing is the consumer falling behind the producers, however young
            strength=min(1.0, max(g.lag / 10_000.0, g.time_lag_s / 60.0, g.growth / (2 * cfg.lag_min_messages), 0.4 if bad_status else 0.0)),
            summary=f"Consumer group '{g.group}' is {g.lag:.0f} messages ({g.time_lag_s:.0f} s) behind on '{g.topic}', lag grew by {g.growth:.0f} in the window{seen_by}",
            evidence={
                "lag": g.lag,
                "time_lag_s": g.time_lag_s,
                "lag_growth": g.growth,
                "statuses": list(g.statuses),
                "partitions": g.partitions,
                "consumer_service": g.service,
            },
            recommendation=recommendation(KIND),
        )
