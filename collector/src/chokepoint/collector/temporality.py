"""Cumulative → delta: OTLP sum and histogram points as the store wants them, per stream.

Usage (``ingest_points`` calls these for every point it maps)::

    streams = CumulativeToDelta(store)
    streams.number(key, metric, "sum", point)     # float | None
    streams.rate(key, metric, point)              # per second | None
    streams.sketch(key, metric, "histogram", point, unit_override=None)   # Sketch | None

``key`` is the stream: (resource identity, metric name, sorted point attributes).

Sums: delta temporality is used as is; cumulative monotonic sums and cumulative
histograms are turned into deltas per stream (resource + metric + point attributes); a new
``start_time_unix_nano`` or a value going down is a reset (the point counts in full).  The
first point of a cumulative stream counts in full only when its start time is at or after
the collector's start (the stream began while we watched); otherwise it is the baseline.
Non-monotonic sums (UpDownCounters such as ``db.client.connection.count``) and gauges are
latest values.

Histograms (explicit and exponential) become sketches in seconds (unit ``ms``/``us``/``ns``
converted, ``unit_override`` for old semconv names whose unit field is missing).
Exponential points of one stream whose scale changed are aligned by downscaling the finer one.
A delta histogram point without buckets (count and sum only) adds its count at the mean
value.  A point with ``NO_RECORDED_VALUE`` gives None.  ``rate`` divides a monotonic sum by
the sender's interval (delta: the point's own start → time; cumulative: since the previous
point of the stream).  Malformed points (NaN, bucket counts not matching bounds, bounds not
increasing) raise ``BadPoint``.

Configuration (attribute): ``max_streams`` (100,000) streams remembered; past it the oldest
is forgotten and counted as ``chokepoint_ingest_dropped_total{reason="streams"}``.
"""

from __future__ import annotations

import itertools

from opentelemetry.proto.metrics.v1 import metrics_pb2

from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import Store

CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

UNIT_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "": 1.0}


class BadPoint(ValueError):
    """A point that cannot be decoded; the rest of the request is kept."""


class CumulativeToDelta:
    """Per-stream state turning cumulative points into deltas; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._started_ns = int(store.clock() * 1e9)
        # cumulative → delta state per stream: key -> (start_ns, previous point state)
        self._prev: dict[tuple, tuple[int, object]] = {}
        self.max_streams = 100_000

    def number(self, key: tuple, m, which: str, p) -> float | None:
        """Value of a gauge/sum point as the store wants it: latest for gauges/non-monotonic sums, delta for monotonic sums."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        v = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
        if v != v:
            raise BadPoint("NaN value")
        if which == "gauge":
            return v
        s = m.sum
        if not s.is_monotonic:
            return v
        if s.aggregation_temporality == DELTA:
            return v
        prev = self._prev.get(key)
        self._remember(key, p.start_time_unix_nano, v)
        if prev is None:
            return v if self._counts_in_full(p.start_time_unix_nano) else 0.0
        pstart, pv = prev
        if p.start_time_unix_nano != pstart or v < pv:
            return v
        return v - pv

    def rate(self, key: tuple, m, p) -> float | None:
        """Per-second rate of a monotonic sum over the sender's interval (delta: the point's own
        start→time; cumulative: since the previous point of the stream)."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        v = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
        if v != v:
            raise BadPoint("NaN value")
        t, start = p.time_unix_nano, p.start_time_unix_nano
        if m.sum.aggregation_temporality == DELTA:
            return max(0.0, v) / ((t - start) / 1e9) if start and t > start else None
        rkey = ("rate", *key)
        prev = self._prev.get(rkey)
        self._remember(rkey, start, (t, v))
        if prev is None or prev[0] != start or v < prev[1][1] or t <= prev[1][0]:
            return v / ((t - start) / 1e9) if prev is None and self._counts_in_full(start) and t > start else None
        return (v - prev[1][1]) / ((t - prev[1][0]) / 1e9)

    def _remember(self, key: tuple, start_ns: int, state) -> None:
        if key not in self._prev and len(self._prev) >= self.max_streams:
            self.store.count_dropped("streams")
            self._prev.pop(next(iter(self._prev)))
        self._prev[key] = (start_ns, state)

    def _counts_in_full(self, start_ns: int) -> bool:
        return start_ns >= self._started_ns and start_ns > 0

    def sketch(self, key: tuple, m, which: str, p, unit_override: str | None) -> Sketch | None:
        """A delta sketch (seconds for durations) of a histogram point."""
        if p.flags & NO_RECORDED_VALUE:
            return None
        unit = unit_override if unit_override is not None else m.unit
        factor = UNIT_TO_SECONDS.get(unit, 1.0)
        hist = getattr(m, which)
        temporality = hist.aggregation_temporality
        s = Sketch(self.store.config.relative_accuracy)
        has_min = p.HasField("min")
        has_max = p.HasField("max")
        if which == "histogram":
            bounds = [b * factor for b in p.explicit_bounds]
            counts = list(p.bucket_counts)
            if not counts:
                # a histogram without buckets (count and sum only): every value at the mean
                if p.count <= 0 or temporality == CUMULATIVE:
                    return None
                s.add(p.sum * factor / p.count if p.HasField("sum") else 0.0, count=p.count)
                return s
            if len(counts) != len(bounds) + 1:
                raise BadPoint(f"{len(counts)} bucket counts for {len(bounds)} bounds")
            if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
                raise BadPoint("explicit bounds not increasing")
            total = p.sum * factor if p.HasField("sum") else None
            lo = p.min * factor if has_min else None
            hi = p.max * factor if has_max else None
            if temporality == CUMULATIVE:
                prev = self._prev.get(key)
                self._remember(key, p.start_time_unix_nano, (tuple(bounds), counts, total))
                if prev is None:
                    if not self._counts_in_full(p.start_time_unix_nano):
                        return None
                else:
                    pstart, (pbounds, pcounts, ptotal) = prev
                    if pstart == p.start_time_unix_nano and pbounds == tuple(bounds) and all(c >= pc for c, pc in zip(counts, pcounts, strict=False)):
                        counts = [c - pc for c, pc in zip(counts, pcounts, strict=False)]
                        total = total - ptotal if total is not None and ptotal is not None else None
                        lo = hi = None  # min/max of a cumulative point are not the delta's
            s.add_explicit_buckets(bounds, counts, total, lo, hi)
            return s
        # exponential
        scale = p.scale
        offset = p.positive.offset
        counts = list(p.positive.bucket_counts)
        noff = p.negative.offset
        ncounts = list(p.negative.bucket_counts)
        zero = p.zero_count
        total = p.sum if p.HasField("sum") else None
        lo = p.min if has_min else None
        hi = p.max if has_max else None
        if temporality == CUMULATIVE:
            prev = self._prev.get(key)
            self._remember(key, p.start_time_unix_nano, (scale, offset, counts, noff, ncounts, zero, total))
            if prev is None:
                if not self._counts_in_full(p.start_time_unix_nano):
                    return None
            else:
                pstart, pstate = prev
                delta = _exp_delta(pstate, (scale, offset, counts, noff, ncounts, zero, total)) if pstart == p.start_time_unix_nano else None
                if delta is not None:
                    scale, offset, counts, noff, ncounts, zero, total = delta
                    lo = hi = None
        if factor != 1.0:
            total = total * factor if total is not None else None
            lo = lo * factor if lo is not None else None
            hi = hi * factor if hi is not None else None
        s.add_exponential_buckets(scale, offset, counts, zero, total, lo, hi, noff, ncounts, unit_factor=factor)
        return s


def _downscale(offset: int, counts: list[int], by: int) -> tuple[int, list[int]]:
    """Merge exponential buckets to a scale ``by`` steps coarser (index >> by)."""
    if by <= 0 or not counts:
        return offset, counts
    new_off = offset >> by
    out: list[int] = []
    for j, c in enumerate(counts):
        idx = ((offset + j) >> by) - new_off
        while len(out) <= idx:
            out.append(0)
        out[idx] += c
    return new_off, out


def _sub_buckets(off_a: int, a: list[int], off_b: int, b: list[int]) -> list[int] | None:
    """a - b aligned at a's offset; None if b has counts outside a or above a (a reset)."""
    out = list(a)
    for j, c in enumerate(b):
        idx = off_b + j - off_a
        if c == 0:
            continue
        if idx < 0 or idx >= len(out) or out[idx] < c:
            return None
        out[idx] -= c
    return out


def _exp_delta(prev: tuple, cur: tuple) -> tuple | None:
    """cur - prev of two cumulative exponential points (scales aligned by downscaling); None on reset."""
    pscale, poff, pcounts, pnoff, pncounts, pzero, ptotal = prev
    scale, off, counts, noff, ncounts, zero, total = cur
    if scale < pscale:
        poff, pcounts = _downscale(poff, pcounts, pscale - scale)
        pnoff, pncounts = _downscale(pnoff, pncounts, pscale - scale)
    elif scale > pscale:
        off, counts = _downscale(off, counts, scale - pscale)
        noff, ncounts = _downscale(noff, ncounts, scale - pscale)
        scale = pscale
    if zero < pzero:
        return None
    pos = _sub_buckets(off, counts, poff, pcounts)
    neg = _sub_buckets(noff, ncounts, pnoff, pncounts)
    if pos is None or neg is None:
        return None
    d_total = total - ptotal if total is not None and ptotal is not None else None
    return scale, off, pos, noff, neg, zero - pzero, d_total
