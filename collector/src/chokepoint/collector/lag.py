"""Kafka consumer-lag status (Burrow-style) and time-lag interpolation — pure functions.

Usage::

    from chokepoint.collector.lag import LagSample, LagRules, evaluate, time_lag_s

    samples = [LagSample(ts, committed, log_end), ...]     # oldest first, one partition
    status = evaluate(samples, now_s=time.time())          # "OK" | "WARN" | "STALL" | "STOP" | "ERR"
    lag_s = time_lag_s(committed, [(ts, log_end), ...], now_s)

The evaluator reads a sliding window of samples of one group/topic/partition (the store
keeps the last ``LagRules.window_s`` seconds) and returns one of ``catalog.LAG_STATUSES``.
Rules, checked in this order (the first that matches wins):

1. **ERR** — bad data or a rewind: any offset negative, a committed offset above the
   log-end offset (negative lag), or the committed offset going *down* between two
   samples (reset / rewind), or the log-end offset going down (topic recreated).
2. **OK** — no samples, or the newest sample has lag 0, or the lag was 0 at any sample
   of the window (the consumer caught up recently: Burrow's "lag dropped to zero" rule).
3. **STOP** — lag > 0 and the consumer has not committed for longer than
   ``stop_after_s`` (default 120 s): the time since the last commit is taken from
   ``commit_timestamp_s`` when the source knows it, else it is the time since the
   committed offset last changed (pull mode cannot see commits of an unchanged offset).
4. **STALL** — lag > 0 at every sample, the window holds at least ``min_samples`` and
   spans at least ``stall_after_s`` (default 30 s), and the committed offset did not move
   across the whole window (yet rule 3 did not fire: the consumer is alive — it keeps
   committing, or it stopped moving only recently — but makes no progress).
5. **WARN** — the committed offset moves, but the lag grows across the window: at least
   ``min_samples`` samples, the newest lag above the oldest, and a positive
   least-squares slope of lag over time (the consumer is slower than the producers).
6. otherwise **OK**.

Time lag (pull mode): the committed offset is located in the recent history of log-end
offsets ``[(timestamp, log_end_offset), ...]``: the time at which the log end passed the
committed offset is linearly interpolated between the two history samples around it,
and ``time lag = now - that time``.  A committed offset at or past the newest log end
gives 0.  An offset older than the whole history is extrapolated with the history's
average produce rate, and never less than ``now - oldest sample``; with a single
history point and the offset below it the time lag is unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chokepoint.collector.catalog import LAG_STATUSES

OK, WARN, STALL, STOP, ERR = LAG_STATUSES


@dataclass(frozen=True)
class LagSample:
    """One observation of a partition: when, where the group committed, where the log ends."""

    timestamp_s: float
    committed_offset: int
    log_end_offset: int
    commit_timestamp_s: float | None = None  # when the group last committed, if the source knows

    @property
    def lag(self) -> int:
        return self.log_end_offset - self.committed_offset


@dataclass(frozen=True)
class LagRules:
    """Thresholds of the evaluator (documented defaults)."""

    window_s: float = 600.0
    min_samples: int = 3
    stall_after_s: float = 30.0
    stop_after_s: float = 120.0


DEFAULT_RULES = LagRules()


def evaluate(samples: Sequence[LagSample], now_s: float, rules: LagRules = DEFAULT_RULES) -> str:
    """The status of one partition from its samples (oldest first); see the module docstring."""
    window = [s for s in samples if s.timestamp_s >= now_s - rules.window_s]
    if not window:
        return OK
    # 1. ERR
    prev: LagSample | None = None
    for s in window:
        if s.committed_offset < 0 or s.log_end_offset < 0 or s.lag < 0:
            return ERR
        if prev is not None and (s.committed_offset < prev.committed_offset or s.log_end_offset < prev.log_end_offset):
            return ERR
        prev = s
    newest = window[-1]
    # 2. OK when caught up somewhere in the window
    if newest.lag == 0 or any(s.lag == 0 for s in window):
        return OK
    # 3. STOP: no commit for too long
    last_commit = newest.commit_timestamp_s if newest.commit_timestamp_s is not None else _offset_last_changed(samples, newest)
    if now_s - last_commit > rules.stop_after_s:
        return STOP
    oldest = window[0]
    enough = len(window) >= rules.min_samples
    # 4. STALL: alive but not moving
    if enough and newest.committed_offset == oldest.committed_offset and newest.timestamp_s - oldest.timestamp_s >= rules.stall_after_s:
        return STALL
    # 5. WARN: moving, but lag growing
    if enough and newest.committed_offset != oldest.committed_offset and newest.lag > oldest.lag and _slope(window) > 0:
        return WARN
    return OK


def _offset_last_changed(samples: Sequence[LagSample], newest: LagSample) -> float:
    """Timestamp of the first sample (in all known samples) carrying the newest committed offset."""
    t = newest.timestamp_s
    for s in reversed(samples):
        if s.committed_offset != newest.committed_offset:
            break
        t = s.timestamp_s
    return t


def _slope(window: Sequence[LagSample]) -> float:
    n = len(window)
    mean_t = sum(s.timestamp_s for s in window) / n
    mean_l = sum(s.lag for s in window) / n
    num = sum((s.timestamp_s - mean_t) * (s.lag - mean_l) for s in window)
    den = sum((s.timestamp_s - mean_t) ** 2 for s in window)
    return num / den if den > 0 else 0.0


def time_lag_s(committed_offset: int, log_end_history: Sequence[tuple[float, int]], now_s: float) -> float | None:
    """Seconds since the log end passed ``committed_offset`` (history oldest first); None without history."""
    if not log_end_history:
        return None
    newest_t, newest_end = log_end_history[-1]
    if committed_offset >= newest_end:
        return 0.0
    # walk back to the first history point at or below the committed offset
    for i in range(len(log_end_history) - 1, 0, -1):
        t_hi, end_hi = log_end_history[i]
        t_lo, end_lo = log_end_history[i - 1]
        if end_lo <= committed_offset < end_hi:
            frac = (committed_offset - end_lo) / (end_hi - end_lo)
            passed_at = t_lo + frac * (t_hi - t_lo)
            return max(0.0, now_s - passed_at)
    oldest_t, oldest_end = log_end_history[0]
    if committed_offset >= oldest_end:
        # flat history at the committed offset: the log end has been there since oldest_t
        return max(0.0, now_s - oldest_t)
    floor = max(0.0, now_s - oldest_t)
    span_t = newest_t - oldest_t
    span_offsets = newest_end - oldest_end
    if span_t <= 0 or span_offsets <= 0:
        return floor if floor > 0 else None  # one history point: unknown, not zero
    rate = span_offsets / span_t
    passed_at = oldest_t - (oldest_end - committed_offset) / rate
    return max(floor, now_s - passed_at)
