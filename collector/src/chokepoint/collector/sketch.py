"""Mergeable relative-error quantile sketch (DDSketch-style logarithmic buckets).

Usage::

    s = Sketch()                     # relative accuracy 1 %, at most 2048 bins
    s.add(0.0123); s.add_many(values); s.add(0.5, count=3)
    s.quantile(0.99)                 # within 1 % of the exact p99 of what was added
    s.merge(other)                   # == a sketch of both inputs (same accuracy)
    blob = s.to_bytes(); Sketch.from_bytes(blob)

Guarantees and mapping
- A positive value ``v`` goes to bin ``k = ceil(ln(v) / ln(gamma))`` with
  ``gamma = (1 + a) / (1 - a)`` (``a`` = relative accuracy).  Bin ``k`` covers
  ``(gamma^(k-1), gamma^k]`` and is represented by ``2 * gamma^k / (gamma + 1)``, which is
  within ``a`` of every value in the bin.  Quantiles use the DDSketch rank rule
  (``rank = q * (count - 1)``, the first bin whose cumulative count exceeds it) and are
  clamped to the exact ``[min, max]``, so ``p0``/``p100`` are exact.
- Values below ``MIN_INDEXABLE`` (1e-12, i.e. far under a nanosecond in seconds) and
  zero go to a zero bin; negative values go to a mirrored bin set (latencies are never
  negative, but bad input must not crash or corrupt the sketch).
- Memory is bounded: past ``max_bins`` bins the lowest bins are collapsed into the lowest
  kept bin (the low quantiles lose accuracy first; the tail — what matters for
  latency — never does).  With 1 % accuracy 2048 bins span ~18 decades, so the bound
  only triggers on pathological input.
- Merging requires the same relative accuracy (a ``ValueError`` otherwise).

Ingesting pre-aggregated histograms
- ``add_exponential_buckets`` takes an OTLP exponential histogram (``scale``,
  ``offset``, bucket counts).  OTLP bucket ``i`` covers ``(base^i, base^(i+1)]`` with
  ``base = 2^(2^-scale)``; all its count goes to the sketch bin of the bucket's geometric
  midpoint ``base^(i + 0.5)``.  The error is therefore bounded by the source's own
  resolution (``sqrt(base) - 1``: 0.14 % at scale 8, 2.2 % at scale 4) plus the
  sketch's ``a``.  No ``log`` per bucket: the bin is computed from ``(i + 0.5) * ln(base)``.
- ``add_explicit_buckets`` takes an explicit-bucket histogram (``bounds`` and
  ``counts``).  Such a histogram is no better than its buckets: each bucket's count goes
  to the geometric midpoint of ``(lower, upper]``; the first bucket (``<= bounds[0]``) goes
  to ``min`` when known (else ``bounds[0] / 2``), the overflow bucket to ``max`` when known
  (else ``bounds[-1]``); representatives are clamped into ``[min, max]``.  Expect errors
  up to half a bucket width — tens of percent with coarse buckets such as Prometheus'
  defaults (``bench/sketch_accuracy.py``).

Memory: ``freeze()`` turns the bins into two sorted arrays (12 bytes per bin instead of
~100 for a dict entry); the store freezes every sketch of a bucket when it closes.  A
frozen sketch reads and merges as usual and thaws on the next write.

Serialization: ``to_bytes`` is a zlib-compressed struct header + int32 bin keys + uint64
counts (~1.3 KB for 100,000 lognormal latencies in 381 bins; a 10 s bucket's sketch is
smaller); ``from_bytes`` validates, raises ``ValueError`` on corrupt input and returns a
frozen sketch.
"""

from __future__ import annotations

import bisect
import math
import struct
import zlib
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate

DEFAULT_RELATIVE_ACCURACY = 0.01
DEFAULT_MAX_BINS = 2048
MIN_INDEXABLE = 1e-12

_HEADER = struct.Struct("<BdIQdddQII")  # version, accuracy, max_bins, count, sum, min, max, zero, npos, nneg
_VERSION = 1


class Sketch:
    """A DDSketch-style quantile sketch; see the module docstring."""

    __slots__ = (
        "_bins",
        "_frozen_counts",
        "_frozen_keys",
        "_log_gamma",
        "_multiplier",
        "count",
        "gamma",
        "max",
        "max_bins",
        "min",
        "negative_bins",
        "relative_accuracy",
        "sum",
        "zero_count",
    )

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY, max_bins: int = DEFAULT_MAX_BINS) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if max_bins < 2:
            raise ValueError(f"max_bins must be >= 2, got {max_bins!r}")
        self.relative_accuracy = relative_accuracy
        self.max_bins = max_bins
        self.gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log(self.gamma)
        self._multiplier = 1.0 / self._log_gamma
        self._bins: dict[int, int] | None = {}
        self._frozen_keys: array | None = None
        self._frozen_counts: array | None = None
        self.negative_bins: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # ------------------------------------------------------------------ storage
    @property
    def bins(self) -> dict[int, int]:
        """Positive bins ``{key: count}`` (a fresh dict when the sketch is frozen)."""
        if self._bins is not None:
            return self._bins
        return dict(zip(self._frozen_keys, self._frozen_counts, strict=True))

    @bins.setter
    def bins(self, value: dict[int, int]) -> None:
        self._bins = value
        self._frozen_keys = self._frozen_counts = None

    def _mutable(self) -> dict[int, int]:
        """The bins dict, thawing a frozen sketch first."""
        if self._bins is None:
            self._bins = dict(zip(self._frozen_keys, self._frozen_counts, strict=True))
            self._frozen_keys = self._frozen_counts = None
        return self._bins

    def items(self) -> Iterable[tuple[int, int]]:
        """``(key, count)`` of the positive bins (sorted when frozen)."""
        if self._bins is not None:
            return self._bins.items()
        return zip(self._frozen_keys, self._frozen_counts, strict=True)

    def sorted_items(self) -> list[tuple[int, int]]:
        if self._bins is not None:
            return sorted(self._bins.items())
        return list(zip(self._frozen_keys, self._frozen_counts, strict=True))

    @property
    def bin_count(self) -> int:
        return len(self._bins) if self._bins is not None else len(self._frozen_keys)

    def freeze(self) -> Sketch:
        """Store the bins as two sorted arrays (12 bytes per bin instead of ~100) until the
        next write; reads and merges work on frozen sketches as they are.  Returns self."""
        if self._bins is not None:
            keys = sorted(self._bins)
            self._frozen_keys = array("i", keys)
            self._frozen_counts = array("Q", (self._bins[k] for k in keys))
            self._bins = None
        return self

    @property
    def frozen(self) -> bool:
        return self._bins is None

    # ------------------------------------------------------------------ adding
    def key(self, value: float) -> int:
        """The bin key of a positive value."""
        return math.ceil(math.log(value) * self._multiplier)

    def value_of(self, key: int) -> float:
        """The representative value of bin ``key`` (within the relative accuracy of its values)."""
        return 2.0 * math.exp(key * self._log_gamma) / (self.gamma + 1.0)

    def add(self, value: float, count: int = 1) -> None:
        """Add ``value`` ``count`` times.  NaN/inf and non-positive counts are ignored."""
        if count <= 0 or value != value or value in (math.inf, -math.inf):
            return
        if value > MIN_INDEXABLE:
            k = math.ceil(math.log(value) * self._multiplier)
            bins = self._bins if self._bins is not None else self._mutable()
            c = bins.get(k)
            if c is None:
                bins[k] = count
                if len(bins) > self.max_bins:
                    self._collapse(bins)
            else:
                bins[k] = c + count
        elif value < -MIN_INDEXABLE:
            k = math.ceil(math.log(-value) * self._multiplier)
            nb = self.negative_bins
            nb[k] = nb.get(k, 0) + count
            if len(nb) > self.max_bins:
                self._collapse(nb)
        else:
            self.zero_count += count
        self.count += count
        self.sum += value * count
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def add_many(self, values: Iterable[float]) -> None:
        """Add many values (the hot path: one ``log`` per positive value, locals bound once)."""
        log = math.log
        ceil = math.ceil
        mult = self._multiplier
        bins = self._mutable()
        get = bins.get
        n = 0
        total = 0.0
        lo = self.min
        hi = self.max
        others: list[float] = []
        for v in values:
            if v > MIN_INDEXABLE and v != math.inf:
                k = ceil(log(v) * mult)
                bins[k] = get(k, 0) + 1
                n += 1
                total += v
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
            else:
                others.append(v)
        self.count += n
        self.sum += total
        self.min = lo
        self.max = hi
        if len(bins) > self.max_bins:
            self._collapse(bins)
        for v in others:
            self.add(v)

    def add_exponential_buckets(
        self,
        scale: int,
        offset: int,
        bucket_counts: Sequence[int],
        zero_count: int = 0,
        total: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        negative_offset: int = 0,
        negative_counts: Sequence[int] = (),
        unit_factor: float = 1.0,
    ) -> None:
        """Add an OTLP exponential histogram (see the module docstring for the error bound).

        ``unit_factor`` converts the source unit (e.g. 1e-3 for ms into seconds); ``total``,
        ``minimum`` and ``maximum`` are already in the target unit.
        """
        ln_base = math.ldexp(math.log(2.0), -scale)  # ln(2^(2^-scale)) = ln2 * 2^-scale
        shift = math.log(unit_factor) if unit_factor != 1.0 else 0.0
        mult = self._multiplier * ln_base
        smult = shift * self._multiplier
        ceil = math.ceil
        bins = self._mutable()
        n = 0
        approx_sum = 0.0
        lo_key = hi_key = None
        for j, c in enumerate(bucket_counts):
            if c <= 0:
                continue
            i = offset + j
            k = ceil((i + 0.5) * mult + smult)
            bins[k] = bins.get(k, 0) + c
            n += c
            approx_sum += c * math.exp((i + 0.5) * ln_base + shift)
            if lo_key is None:
                lo_key = i
            hi_key = i
        neg_n = 0
        for j, c in enumerate(negative_counts):
            if c <= 0:
                continue
            i = negative_offset + j
            k = ceil((i + 0.5) * mult + smult)
            self.negative_bins[k] = self.negative_bins.get(k, 0) + c
            neg_n += c
            approx_sum -= c * math.exp((i + 0.5) * ln_base + shift)
        if zero_count > 0:
            self.zero_count += zero_count
        added = n + neg_n + max(zero_count, 0)
        if added == 0:
            return
        self.count += added
        self.sum += total if total is not None else approx_sum
        if minimum is None:
            if neg_n:
                deepest = negative_offset + max(j for j, c in enumerate(negative_counts) if c > 0)
                minimum = -math.exp((deepest + 1) * ln_base + shift)
            elif zero_count > 0:
                minimum = 0.0
            elif lo_key is not None:
                minimum = math.exp(lo_key * ln_base + shift)
        if maximum is None:
            if hi_key is not None:
                maximum = math.exp((hi_key + 1) * ln_base + shift)
            elif zero_count > 0:
                maximum = 0.0
        if minimum is not None and minimum < self.min:
            self.min = minimum
        if maximum is not None and maximum > self.max:
            self.max = maximum
        if len(bins) > self.max_bins:
            self._collapse(bins)

    def add_explicit_buckets(
        self,
        bounds: Sequence[float],
        bucket_counts: Sequence[int],
        total: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> None:
        """Add an explicit-bucket histogram (``len(counts) == len(bounds) + 1``)."""
        if len(bucket_counts) != len(bounds) + 1:
            raise ValueError(f"explicit histogram needs len(bounds)+1 counts, got {len(bucket_counts)} counts for {len(bounds)} bounds")
        n = 0
        approx_sum = 0.0
        lo_seen = hi_seen = None
        for j, c in enumerate(bucket_counts):
            if c <= 0:
                continue
            if j == 0:
                upper = bounds[0] if bounds else math.inf
                rep = minimum if minimum is not None else (upper / 2.0 if upper != math.inf else (maximum or 0.0))
                if upper != math.inf and rep > upper:
                    rep = upper
            elif j == len(bounds):
                rep = maximum if maximum is not None else bounds[-1]
                if rep < bounds[-1]:
                    rep = bounds[-1]
            else:
                lower, upper = bounds[j - 1], bounds[j]
                rep = math.sqrt(lower * upper) if lower > 0 else (lower + upper) / 2.0
            if minimum is not None and rep < minimum:
                rep = minimum
            if maximum is not None and rep > maximum:
                rep = maximum
            self._add_bin_count(rep, c)
            n += c
            approx_sum += rep * c
            if lo_seen is None:
                lo_seen = rep
            hi_seen = rep
        if n == 0:
            return
        self.count += n
        self.sum += total if total is not None else approx_sum
        lo = minimum if minimum is not None else lo_seen
        hi = maximum if maximum is not None else hi_seen
        if lo is not None and lo < self.min:
            self.min = lo
        if hi is not None and hi > self.max:
            self.max = hi

    def _add_bin_count(self, value: float, count: int) -> None:
        if value > MIN_INDEXABLE:
            k = self.key(value)
            bins = self._mutable()
            bins[k] = bins.get(k, 0) + count
            if len(bins) > self.max_bins:
                self._collapse(bins)
        elif value < -MIN_INDEXABLE:
            k = self.key(-value)
            self.negative_bins[k] = self.negative_bins.get(k, 0) + count
        else:
            self.zero_count += count

    def _collapse(self, bins: dict[int, int]) -> None:
        keys = sorted(bins)
        excess = len(keys) - self.max_bins
        if excess <= 0:
            return
        target = keys[excess]
        moved = 0
        for k in keys[:excess]:
            moved += bins.pop(k)
        bins[target] += moved

    # ------------------------------------------------------------------ combining
    def merge(self, other: Sketch) -> Sketch:
        """Add everything in ``other`` into this sketch (in place); returns ``self``."""
        if other.count == 0:
            return self
        if other.gamma != self.gamma:
            raise ValueError(f"cannot merge sketches of different accuracy ({self.relative_accuracy} vs {other.relative_accuracy})")
        bins = self._mutable()
        get = bins.get
        for k, c in other.items():
            bins[k] = get(k, 0) + c
        if other.negative_bins:
            nb = self.negative_bins
            for k, c in other.negative_bins.items():
                nb[k] = nb.get(k, 0) + c
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        if other.min < self.min:
            self.min = other.min
        if other.max > self.max:
            self.max = other.max
        if len(bins) > self.max_bins:
            self._collapse(bins)
        return self

    def copy(self) -> Sketch:
        s = Sketch(self.relative_accuracy, self.max_bins)
        if self._bins is not None:
            s._bins = dict(self._bins)
        else:
            s._bins = None
            s._frozen_keys = array("i", self._frozen_keys)
            s._frozen_counts = array("Q", self._frozen_counts)
        s.negative_bins = dict(self.negative_bins)
        s.zero_count = self.zero_count
        s.count = self.count
        s.sum = self.sum
        s.min = self.min
        s.max = self.max
        return s

    @classmethod
    def merged(cls, sketches: Iterable[Sketch], relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> Sketch:
        out = cls(relative_accuracy)
        for s in sketches:
            out.merge(s)
        return out

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.count

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 <= q <= 1), or ``None`` when the sketch is empty."""
        if self.count == 0:
            return None
        if q <= 0.0:
            return self.min
        if q >= 1.0:
            return self.max
        rank = q * (self.count - 1)
        seen = 0
        if self.negative_bins:
            for k in sorted(self.negative_bins, reverse=True):
                seen += self.negative_bins[k]
                if seen > rank:
                    return self._clamp(-self.value_of(k))
        seen += self.zero_count
        if seen > rank:
            return self._clamp(0.0)
        if self._bins is None:  # frozen: keys sorted, prefix sums in C
            i = bisect.bisect_right(list(accumulate(self._frozen_counts)), rank - seen)
            return self._clamp(self.value_of(self._frozen_keys[i])) if i < len(self._frozen_keys) else self.max
        for k, c in self.sorted_items():
            seen += c
            if seen > rank:
                return self._clamp(self.value_of(k))
        return self.max

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles (ascending or not) with one sort of the bins."""
        if self.count == 0:
            return [None for _ in qs]
        order = sorted(range(len(qs)), key=lambda i: qs[i])
        out: list[float | None] = [None] * len(qs)
        walk = [(-self.value_of(k), self.negative_bins[k]) for k in sorted(self.negative_bins, reverse=True)]
        if self.zero_count:
            walk.append((0.0, self.zero_count))
        walk.extend((self.value_of(k), c) for k, c in self.sorted_items())
        seen = 0
        j = 0
        for i in order:
            q = qs[i]
            if q <= 0.0:
                out[i] = self.min
                continue
            if q >= 1.0:
                out[i] = self.max
                continue
            rank = q * (self.count - 1)
            while j < len(walk) and seen + walk[j][1] <= rank:
                seen += walk[j][1]
                j += 1
            out[i] = self._clamp(walk[j][0]) if j < len(walk) else self.max
        return out

    def _clamp(self, v: float) -> float:
        if v < self.min:
            return self.min
        if v > self.max:
            return self.max
        return v

    def count_le(self, bound: float) -> int:
        """Estimated number of values ``<= bound`` (by bin representative)."""
        if self.count == 0:
            return 0
        if bound >= self.max:
            return self.count
        if bound < self.min:
            return 0
        n = 0
        if bound >= 0:
            n += self.zero_count + sum(self.negative_bins.values())
            if bound > MIN_INDEXABLE:
                limit = self.key(bound)
                # bin k holds values in (gamma^(k-1), gamma^k]; count the bin when its
                # representative is <= bound
                for k, c in self.items():
                    if k < limit or (k == limit and self.value_of(k) <= bound):
                        n += c
        else:
            limit = self.key(-bound)
            for k, c in self.negative_bins.items():
                if k > limit or (k == limit and -self.value_of(k) <= bound):
                    n += c
        return n

    def cumulative_counts(self, bounds: Sequence[float]) -> list[int]:
        """Counts ``<= b`` for each ascending bound (one pass; for Prometheus buckets)."""
        out = []
        items = [(self.value_of(k), c) for k, c in self.sorted_items()]
        base = self.zero_count + sum(self.negative_bins.values())
        i = 0
        running = base
        for b in bounds:
            while i < len(items) and items[i][0] <= b:
                running += items[i][1]
                i += 1
            out.append(self.count if b >= self.max else (0 if b < self.min else min(running, self.count)))
        return out

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        if self._bins is None:
            keys, counts = self._frozen_keys, self._frozen_counts
        else:
            keys = array("i", sorted(self._bins))
            counts = array("Q", (self._bins[k] for k in keys))
        nkeys = array("i", sorted(self.negative_bins))
        ncounts = array("Q", (self.negative_bins[k] for k in nkeys))
        header = _HEADER.pack(
            _VERSION,
            self.relative_accuracy,
            self.max_bins,
            self.count,
            self.sum,
            self.min,
            self.max,
            self.zero_count,
            len(keys),
            len(nkeys),
        )
        return zlib.compress(header + keys.tobytes() + counts.tobytes() + nkeys.tobytes() + ncounts.tobytes(), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Sketch:
        try:
            raw = zlib.decompress(blob)
            version, acc, max_bins, count, total, lo, hi, zero, npos, nneg = _HEADER.unpack_from(raw, 0)
        except (zlib.error, struct.error, TypeError) as exc:
            raise ValueError(f"not a chokepoint sketch: {exc}") from exc
        if version != _VERSION:
            raise ValueError(f"unsupported sketch version {version}")
        expected = _HEADER.size + npos * 12 + nneg * 12
        if len(raw) != expected:
            raise ValueError(f"corrupt sketch: {len(raw)} bytes, expected {expected}")
        s = cls(acc, max_bins)
        off = _HEADER.size
        keys = array("i")
        keys.frombytes(raw[off : off + 4 * npos])
        off += 4 * npos
        counts = array("Q")
        counts.frombytes(raw[off : off + 8 * npos])
        off += 8 * npos
        nkeys = array("i")
        nkeys.frombytes(raw[off : off + 4 * nneg])
        off += 4 * nneg
        ncounts = array("Q")
        ncounts.frombytes(raw[off : off + 8 * nneg])
        s._bins = None  # loaded sketches are frozen (keys were written sorted)
        s._frozen_keys = keys
        s._frozen_counts = counts
        s.negative_bins = dict(zip(nkeys, ncounts, strict=False))
        s.zero_count = zero
        s.count = count
        s.sum = total
        s.min = lo
        s.max = hi
        return s

    def __repr__(self) -> str:
        return f"Sketch(count={self.count}, bins={self.bin_count}, p50={self.quantile(0.5)}, p99={self.quantile(0.99)})"
