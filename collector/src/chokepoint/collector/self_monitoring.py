"""Self-monitoring: what the collector ingested, rejected and dropped, and what the agents
report they can and cannot see.

Usage (the store holds one; its ``count_*``, ``counters_snapshot``, ``set_coverage``,
``coverage`` and ``blind_spots`` are these)::

    monitoring = SelfMonitoring(lock, clock)
    monitoring.count_ingested("grpc", spans=512)
    monitoring.count_rejected("http", "too_large")
    monitoring.count_dropped("cardinality")
    monitoring.set_coverage("shop", "psycopg", "spans", 0, version="3.2", instance=ident)
    monitoring.blind_spots()      # [{"service", "library", "version", "what", "try"}]

Counters (plain dicts, read by ``/metrics`` and ``/api/health``): ``ingested_spans`` and
``ingested_points`` by protocol, ``rejected`` by (protocol, reason), ``dropped`` by reason
(``chokepoint_ingest_*_total``).  Coverage (``chokepoint.agent.coverage``): the latest
report per service, library, what and process; a report no agent has repeated for
``COVERAGE_TTL_S`` (180 s) is forgotten (the process went away).  Thread-safe under the lock
it is given (the store's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

COVERAGE_TTL_S = 180.0  # a blind spot no agent has reported for this long is forgotten (the process went away)


class SelfMonitoring:
    """The collector's own counters and the agents' coverage reports; see the module docstring."""

    def __init__(self, lock: threading.RLock, clock: Callable[[], float]) -> None:
        self._lock = lock
        self.clock = clock
        self.ingested_spans: dict[str, int] = {}
        self.ingested_points: dict[str, int] = {}
        self.rejected: dict[tuple[str, str], int] = {}
        self.dropped: dict[str, int] = {}
        # agent coverage (chokepoint.agent.coverage): (service, library, what, instance) -> latest report
        self._coverage: dict[tuple[str, str, str, object], dict] = {}

    def count_ingested(self, protocol: str, spans: int = 0, points: int = 0) -> None:
        with self._lock:
            if spans:
                self.ingested_spans[protocol] = self.ingested_spans.get(protocol, 0) + spans
            if points:
                self.ingested_points[protocol] = self.ingested_points.get(protocol, 0) + points

    def count_rejected(self, protocol: str, reason: str, n: int = 1) -> None:
        with self._lock:
            k = (protocol, reason)
            self.rejected[k] = self.rejected.get(k, 0) + n

    def count_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def counters_snapshot(self) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
        """Copies of (ingested spans, ingested points, rejected, dropped)."""
        with self._lock:
            return dict(self.ingested_spans), dict(self.ingested_points), dict(self.rejected), dict(self.dropped)

    def set_coverage(self, service: str, library: str, what: str, value: float, *, version: str = "", try_: str = "", instance: object = None) -> None:
        """The agent's latest coverage report for one library/what of one process (1 seen, 0 blind spot)."""
        with self._lock:
            self._coverage[(service, library, what, instance)] = {"value": float(value), "version": version, "try": try_, "seen_s": self.clock()}

    def coverage(self) -> list[dict]:
        """Every coverage report of the last ``COVERAGE_TTL_S`` seconds, worst first per
        service/library/what: ``[{"service", "library", "version", "what", "try", "value"}]``
        (``value`` 1 seen, 0 blind spot in at least one process)."""
        with self._lock:
            cutoff = self.clock() - COVERAGE_TTL_S
            for key in [k for k, v in self._coverage.items() if v["seen_s"] < cutoff]:
                del self._coverage[key]
            merged: dict[tuple[str, str, str], dict] = {}
            for (service, library, what, _instance), v in sorted(self._coverage.items(), key=lambda kv: (kv[0][:3], kv[1]["value"])):
                merged.setdefault(
                    (service, library, what),
                    {"service": service, "library": library, "version": v["version"], "what": what, "try": v["try"], "value": v["value"]},
                )
            return list(merged.values())

    def blind_spots(self) -> list[dict]:
        """``[{"service", "library", "version", "what", "try"}]``: what an agent reported it cannot
        see within the last ``COVERAGE_TTL_S`` seconds (one entry however many processes report it)."""
        return [{k: v for k, v in c.items() if k != "value"} for c in self.coverage() if c["value"] == 0]
