"""The kept-trace buffer: whole traces the ingest decided to keep, bounded, oldest evicted.

Usage (the store holds one and delegates ``keep_trace``, ``add_spans_to_kept_trace``,
``is_trace_kept`` and ``traces`` to it)::

    kept = KeptTraces(config, lock, count_dropped)
    kept.keep({"trace_id": "ab12…", "route": "/a", "keep_reason": "slow", "spans": [...]})
    kept.add_spans("ab12…", more_spans)        # False when the trace is not kept
    kept.newest(route="/a", slow_only=True, limit=50)

A trace is a dict (``trace_id``, ``service``, ``route``, ``duration_ms``, ``error``,
``keep_reason``, ``start``, ``spans``); keeping a trace already kept appends its spans and
fills the fields still empty (an error anywhere makes the trace an error).

Configuration (``StoreConfig``): at most ``max_kept_traces`` traces and ``max_kept_spans``
spans in all (oldest traces evicted), each at most ``max_spans_per_trace`` spans; the spans
past that are counted as ``chokepoint_ingest_dropped_total{reason="trace_too_large"}``
through ``count_dropped``.  Thread-safe under the lock it is given (the store's).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chokepoint.collector.store import StoreConfig


class KeptTraces:
    """Kept traces by id, oldest first; see the module docstring."""

    def __init__(self, config: StoreConfig, lock: threading.RLock, count_dropped: Callable[[str, int], None]) -> None:
        self.config = config
        self._lock = lock
        self._count_dropped = count_dropped
        self._traces: OrderedDict[str, dict] = OrderedDict()
        self.by_id = self._traces  # read-only view for a membership test on the hot path (``trace_id in kept.by_id``)
        self._kept_spans = 0

    def keep(self, trace: dict) -> None:
        """Keep (or extend) a trace; evicts the oldest past the caps."""
        with self._lock:
            tid = trace["trace_id"]
            have = self._traces.get(tid)
            if have is None:
                spans = trace.get("spans", [])
                trace["spans"] = spans[: self.config.max_spans_per_trace]
                self._count_trace_overflow(len(spans) - len(trace["spans"]))
                self._traces[tid] = trace
                self._kept_spans += len(trace["spans"])
                self._evict()
            else:
                self._append_spans(have, trace.get("spans", []))
                for k in ("service", "route", "duration_ms", "error", "keep_reason", "start"):
                    if trace.get(k) not in (None, "", False) and have.get(k) in (None, "", False):
                        have[k] = trace[k]
                if trace.get("error"):
                    have["error"] = True

    def add_spans(self, trace_id: str, spans: list[dict]) -> bool:
        """Append spans to an already kept trace; False if the trace is not kept."""
        with self._lock:
            have = self._traces.get(trace_id)
            if have is None:
                return False
            self._append_spans(have, spans)
            return True

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self._traces

    def __len__(self) -> int:
        return len(self._traces)

    @property
    def spans(self) -> int:
        """Spans kept over all traces."""
        return self._kept_spans

    def newest(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> list[dict]:
        """Copies of kept traces, newest first; ``slow_only`` = kept because slow (not error/random)."""
        with self._lock:
            out = []
            for t in reversed(self._traces.values()):
                if route is not None and t.get("route") != route:
                    continue
                if slow_only and t.get("keep_reason") != "slow":
                    continue
                out.append({**t, "spans": [dict(s) for s in t["spans"]]})
                if len(out) >= limit:
                    break
            return out

    def _append_spans(self, have: dict, spans: list[dict]) -> None:
        room = max(0, self.config.max_spans_per_trace - len(have["spans"]))
        added = spans[:room]
        have["spans"].extend(added)
        self._kept_spans += len(added)
        self._count_trace_overflow(len(spans) - len(added))
        self._evict()

    def _count_trace_overflow(self, n: int) -> None:
        if n > 0:
            self._count_dropped("trace_too_large", n)

    def _evict(self) -> None:
        while self._traces and (len(self._traces) > self.config.max_kept_traces or self._kept_spans > self.config.max_kept_spans):
            _tid, old = self._traces.popitem(last=False)
            self._kept_spans -= len(old["spans"])
