"""The bucket ring: time buckets by arrival time, the open one, closing and retention.

Usage (the store holds its lock around every call; see ``store.py``)::

    ring = BucketRing(config, clock)
    ring.open().routes[key] = ...           # the open bucket (created on first write)
    ring.flush_due()                        # close finished buckets, drop expired ones
    ring.window_list(60)                    # live buckets of the last 60 s (open one included)

- Everything written lands in the **open bucket** (``floor(now / bucket_seconds)``, by
  arrival time — the clock of the collector, not of the sender, so skewed or late
  senders cannot write into closed buckets).  ``flush_due`` closes buckets whose time
  has passed, merges them into the running ``totals`` that ``/metrics`` reads, and drops
  buckets older than ``memory_retention_s``.  Closed buckets are what
  ``SqlitePersistence`` writes; ``restore`` puts them back after a restart.
- ``window_list(window_s, end_s)`` are the buckets overlapping ``[end - window, end)``
  (the live objects: copy before reading them without the lock);
  ``effective_window(window_s)`` the seconds they cover, from the start of the bucket
  holding the window's low edge (or the first data, if later) to now — rates divide by it.

Configuration: ``StoreConfig.bucket_seconds`` and ``StoreConfig.memory_retention_s``.
Not thread-safe on its own: the store's lock guards it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from chokepoint.collector.protocol import Bucket

if TYPE_CHECKING:
    from chokepoint.collector.store import StoreConfig


class BucketRing:
    """Buckets by start time (the open one included); see the module docstring."""

    def __init__(self, config: StoreConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.first_data_s: float | None = None
        self.by_start: dict[float, Bucket] = {}  # start -> bucket (open one included)
        self.closed_upto = -math.inf  # buckets with start < this are closed
        self.totals = Bucket(0.0)  # all closed buckets merged (for /metrics counters)

    def bucket_start(self, ts: float) -> float:
        size = self.config.bucket_seconds
        return math.floor(ts / size) * size

    def open(self) -> Bucket:
        """The bucket being written now (created empty on first use)."""
        now = self.clock()
        start = self.bucket_start(now)
        b = self.by_start.get(start)
        if b is None:
            b = self.by_start[start] = Bucket(start)
        if self.first_data_s is None:
            self.first_data_s = now
        return b

    def flush_due(self) -> None:
        """Close buckets whose interval has passed (merge into totals) and drop expired ones."""
        now = self.clock()
        open_start = self.bucket_start(now)
        for start in sorted(self.by_start):
            if start < open_start and start >= self.closed_upto:
                bucket = self.by_start[start]
                self.totals.merge(bucket)
                bucket.freeze()
        self.closed_upto = max(self.closed_upto, open_start)
        horizon = now - self.config.memory_retention_s
        for start in [s for s in self.by_start if s + self.config.bucket_seconds <= horizon]:
            del self.by_start[start]

    def closed_buckets(self, after_start: float = -math.inf) -> list[Bucket]:
        """Copies of closed buckets with ``start > after_start``, oldest first (for persistence)."""
        return [self.by_start[s].copy() for s in sorted(self.by_start) if after_start < s < self.closed_upto]

    def restore(self, bucket: Bucket) -> bool:
        """Put a persisted closed bucket back (merging with one already there); False if expired."""
        now = self.clock()
        if bucket.start + self.config.bucket_seconds <= now - self.config.memory_retention_s:
            return False
        mine = self.by_start.get(bucket.start)
        if mine is None:
            self.by_start[bucket.start] = bucket
        else:
            mine.merge(bucket)
        if self.first_data_s is None or bucket.start < self.first_data_s:
            self.first_data_s = bucket.start
        self.closed_upto = max(self.closed_upto, bucket.start + self.config.bucket_seconds)
        return True

    def open_copy(self) -> Bucket | None:
        """A copy of the bucket still being written (for a graceful shutdown), or None."""
        start = self.bucket_start(self.clock())
        b = self.by_start.get(start)
        return b.copy() if b is not None and start >= self.closed_upto else None

    def is_open_start(self, start: float) -> bool:
        return start == self.bucket_start(self.clock())

    def window_list(self, window_s: float, end_s: float | None = None) -> list[Bucket]:
        """The live buckets starting in ``[end - window, end)`` (end = now + one bucket), oldest first."""
        now = self.clock()
        if end_s is None:
            lo = now - window_s
            return [self.by_start[s] for s in sorted(self.by_start) if s + self.config.bucket_seconds > lo]
        lo = end_s - window_s
        return [self.by_start[s] for s in sorted(self.by_start) if s + self.config.bucket_seconds > lo and s < end_s]

    def window(self, window_s: float, end_s: float | None = None) -> Bucket:
        """One merged copy of the buckets of a window."""
        out = Bucket(self.bucket_start(self.clock() - window_s))
        for b in self.window_list(window_s, end_s):
            out.merge(b)
        return out

    def effective_window(self, window_s: float) -> float:
        """Seconds the merged buckets of a window cover: from the start of the bucket that
        holds the window's low edge (or the first data, if later) to now; at least 1 s."""
        now = self.clock()
        lo = self.bucket_start(now - window_s)
        if self.first_data_s is not None and self.first_data_s > lo:
            lo = self.first_data_s
        return max(now - lo, 1.0)

    def totals_with_open(self) -> Bucket:
        """A copy of the running totals with the buckets not yet closed merged in."""
        totals = self.totals.copy()
        for s in sorted(self.by_start):
            if s >= self.closed_upto:
                totals.merge(self.by_start[s])
        return totals

    def __len__(self) -> int:
        return len(self.by_start)
