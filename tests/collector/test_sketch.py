"""The relative-error sketch: accuracy vs exact quantiles, merge, bounded memory, OTLP histograms, bytes."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chokepoint.collector.sketch import Sketch

QUANTILES = (0.5, 0.9, 0.99, 0.999)


def exact(sorted_values, q):
    return sorted_values[int(q * (len(sorted_values) - 1))]


def lognormal(n, seed=1):
    rnd = random.Random(seed)
    return [rnd.lognormvariate(math.log(0.05), 1.0) for _ in range(n)]


def pareto(n, seed=2):
    rnd = random.Random(seed)
    return [0.001 * rnd.paretovariate(1.2) for _ in range(n)]


@pytest.mark.parametrize("values", [lognormal(50_000), pareto(50_000)], ids=["lognormal", "pareto"])
def test_every_quantile_is_within_one_percent_of_exact(values):
    s = Sketch(0.01)
    s.add_many(values)
    ordered = sorted(values)
    for q in QUANTILES:
        got, want = s.quantile(q), exact(ordered, q)
        assert abs(got - want) / want <= 0.01, (q, got, want)
    assert s.count == len(values)
    assert s.sum == pytest.approx(sum(values))
    assert s.quantile(0.0) == ordered[0] and s.quantile(1.0) == ordered[-1]


def test_add_and_add_many_build_the_same_sketch():
    values = lognormal(2000, seed=5)
    a, b = Sketch(), Sketch()
    for v in values:
        a.add(v)
    b.add_many(values)
    assert a.bins == b.bins and a.count == b.count and a.min == b.min and a.max == b.max


def test_merge_equals_the_sketch_of_the_combined_input():
    x, y = lognormal(10_000, seed=3), pareto(10_000, seed=4)
    sx, sy, both = Sketch(), Sketch(), Sketch()
    sx.add_many(x)
    sy.add_many(y)
    both.add_many(x + y)
    sx.merge(sy)
    assert sx.bins == both.bins
    assert (sx.count, sx.min, sx.max) == (both.count, both.min, both.max)
    assert sx.sum == pytest.approx(both.sum)
    for q in QUANTILES:
        assert sx.quantile(q) == both.quantile(q)


def test_merging_different_accuracies_is_refused():
    a, b = Sketch(0.01), Sketch(0.02)
    b.add(1.0)
    with pytest.raises(ValueError, match="different accuracy"):
        a.merge(b)


def test_memory_is_bounded_and_the_tail_stays_accurate():
    s = Sketch(0.01, max_bins=100)
    values = [10 ** random.Random(7).uniform(-9, 3) for _ in range(20_000)]
    s.add_many(values)
    assert len(s.bins) <= 100
    ordered = sorted(values)
    for q in (0.99, 0.999):
        assert abs(s.quantile(q) - exact(ordered, q)) / exact(ordered, q) <= 0.01
    # the collapsed low end is clamped, never below the true minimum
    assert s.quantile(0.01) >= ordered[0]


def test_zero_negative_nan_and_inf_are_handled():
    s = Sketch()
    s.add_many([0.0, -0.5, 2.0, float("nan"), float("inf"), 1.0])
    assert s.count == 4  # nan and inf ignored
    assert s.zero_count == 1 and sum(s.negative_bins.values()) == 1
    assert s.min == -0.5 and s.max == 2.0
    assert s.quantile(0.0) == -0.5
    assert abs(s.quantile(0.34) - 0.0) < 1e-12  # rank 1 of [-0.5, 0, 1, 2]
    assert s.quantile(1.0) == 2.0
    assert Sketch().quantile(0.5) is None


def test_exponential_buckets_error_is_bounded_by_the_source_resolution():
    values = lognormal(20_000, seed=11)
    scale = 8  # base = 2^(1/256): bucket half-width ~0.14 %
    counts: dict[int, int] = {}
    for v in values:
        idx = math.ceil(math.log2(v) * 2**scale) - 1  # OTLP: bucket i covers (base^i, base^(i+1)]
        counts[idx] = counts.get(idx, 0) + 1
    offset = min(counts)
    dense = [counts.get(i, 0) for i in range(offset, max(counts) + 1)]
    s = Sketch()
    s.add_exponential_buckets(scale, offset, dense, 0, sum(values), min(values), max(values))
    ordered = sorted(values)
    bound = 0.01 + (2 ** (2**-scale) - 1)
    for q in QUANTILES:
        assert abs(s.quantile(q) - exact(ordered, q)) / exact(ordered, q) <= bound
    assert s.count == len(values) and s.sum == pytest.approx(sum(values))


def test_exponential_buckets_in_milliseconds_convert_to_seconds():
    s = Sketch()
    # one value of 100 ms in bucket i at scale 0: (2^i, 2^(i+1)] ms; 100 ms lies in (64, 128]
    s.add_exponential_buckets(0, 6, [1], unit_factor=1e-3)
    # geometric midpoint of (64, 128] ms = 90.5 ms
    assert s.quantile(0.5) == pytest.approx(0.0905, rel=0.011)


def test_explicit_buckets_map_to_geometric_midpoints_clamped_to_min_max():
    s = Sketch()
    # bounds 0.01, 0.1, 1: 3 values in (0.01, 0.1], 1 above 1 s (max 4 s), 1 below 10 ms (min 2 ms)
    s.add_explicit_buckets([0.01, 0.1, 1.0], [1, 3, 0, 1], total=5.0, minimum=0.002, maximum=4.0)
    assert s.count == 5 and s.sum == 5.0
    assert s.quantile(0.0) == 0.002
    assert s.quantile(0.5) == pytest.approx(math.sqrt(0.01 * 0.1), rel=0.01)
    assert s.quantile(1.0) == 4.0
    with pytest.raises(ValueError, match="bounds"):
        s.add_explicit_buckets([0.1], [1, 2, 3])


def test_bytes_round_trip_and_corrupt_input():
    s = Sketch()
    s.add_many([*pareto(5000), 0.0, -1.0])
    blob = s.to_bytes()
    t = Sketch.from_bytes(blob)
    assert (t.bins, t.negative_bins, t.zero_count, t.count, t.sum, t.min, t.max) == (
        s.bins,
        s.negative_bins,
        s.zero_count,
        s.count,
        s.sum,
        s.min,
        s.max,
    )
    assert len(blob) < 4 * len(s.bins) + 200  # compact: well under 12 bytes per bin
    with pytest.raises(ValueError):
        Sketch.from_bytes(b"not a sketch")
    with pytest.raises(ValueError):
        Sketch.from_bytes(blob[:-3])


def test_cumulative_counts_for_prometheus_buckets():
    s = Sketch()
    s.add_many([0.0005, 0.002, 0.002, 0.03, 0.4, 7.0])
    assert s.cumulative_counts([0.001, 0.005, 0.05, 0.5, 5.0, 10.0]) == [1, 3, 4, 5, 5, 6]
    assert s.count_le(0.005) == 3


def test_quantiles_in_one_pass_equal_single_quantiles():
    s = Sketch()
    s.add_many([*pareto(3000, seed=9), 0.0, 0.0, -0.25])
    qs = (0.999, 0.0, 0.5, 0.0001, 0.9, 1.0, 0.99)
    assert s.quantiles(qs) == [s.quantile(q) for q in qs]
    assert Sketch().quantiles((0.5, 0.9)) == [None, None]


def test_exponential_negative_buckets_without_min_get_a_finite_bound():
    s = Sketch()
    s.add_exponential_buckets(0, 0, [2], negative_offset=1, negative_counts=[1])  # (-4, -2] and (1, 2]
    assert s.min == -4.0 and s.max == 2.0
    assert s.quantile(0.0) == -4.0 and s.count == 3


def test_frozen_sketch_reads_merges_and_thaws_on_write():
    values = lognormal(5000, seed=21)
    live = Sketch()
    live.add_many(values)
    frozen = live.copy().freeze()
    assert frozen.frozen and frozen.bins == live.bins and frozen.bin_count == len(live.bins)
    assert frozen.quantiles(QUANTILES) == live.quantiles(QUANTILES)
    assert frozen.cumulative_counts([0.01, 0.1, 1.0]) == live.cumulative_counts([0.01, 0.1, 1.0])
    assert Sketch.from_bytes(frozen.to_bytes()).bins == live.bins
    target = Sketch()
    target.merge(frozen)
    assert target.bins == live.bins and frozen.frozen  # merging from a frozen sketch keeps it frozen
    frozen.add(0.5)
    assert not frozen.frozen and frozen.count == live.count + 1


@pytest.mark.parametrize("values", [lognormal(3000, seed=31), [0.0, 0.0, *pareto(500, seed=32)], [-0.1, 0.0, 0.2, 0.3]])
def test_frozen_quantile_equals_live_quantile(values):
    live = Sketch()
    live.add_many(values)
    frozen = live.copy().freeze()
    for q in (0.0, 0.001, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0):
        assert frozen.quantile(q) == live.quantile(q), q


latencies = st.lists(st.floats(min_value=1e-6, max_value=1e4, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(latencies, st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=300))
def test_property_quantile_bound_and_merge(values, q, split):
    whole = Sketch()
    whole.add_many(values)
    want = exact(sorted(values), q)
    assert abs(whole.quantile(q) - want) <= 0.01 * want + 1e-15
    left, right = Sketch(), Sketch()
    left.add_many(values[:split])
    right.add_many(values[split:])
    left.merge(right)
    assert left.bins == whole.bins and left.count == whole.count
    assert left.quantile(q) == whole.quantile(q)
