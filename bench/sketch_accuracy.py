"""Quantile accuracy of chokepoint's sketch vs Prometheus default histogram buckets.

Usage::

    .venv/bin/python bench/sketch_accuracy.py [--n 100000] [--repeats 5]

For lognormal (median 50 ms, sigma 1) and Pareto (alpha 1.2, from 1 ms) latencies, in
seconds, prints the relative error of p50/p90/p99/p99.9 against the exact quantile
(the value at rank ``floor(q * (n - 1))``), as the median over ``--repeats`` seeds, for
1. chokepoint's ``Sketch`` (relative accuracy 1 %), and
2. the same sketch fed with an OTLP exponential histogram of the data, as the OTel SDK
   builds it by default (at most 160 buckets: the highest scale <= 20 that fits the
   range) — what the collector sees from our agent; and
3. ``prometheus_client``'s default histogram buckets with the quantile estimated by
   linear interpolation inside the bucket, as PromQL's ``histogram_quantile`` does
   (the ``+Inf`` bucket answers with the highest finite bound).
Then the speed of the hot paths: ``add_many`` per value, ``merge`` of two sketches,
``quantile``, ``to_bytes`` size — CPU time (``time.process_time``), so other load on
the machine does not inflate it.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from prometheus_client import Histogram

from chokepoint.collector.sketch import Sketch

QUANTILES = (0.5, 0.9, 0.99, 0.999)
PROM_BUCKETS = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != math.inf)


def lognormal(n: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.lognormvariate(math.log(0.05), 1.0) for _ in range(n)]


def pareto(n: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [0.001 * rnd.paretovariate(1.2) for _ in range(n)]


def exact(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))]


def prometheus_quantile(values: list[float], q: float) -> float:
    """``histogram_quantile`` over the default buckets (linear interpolation)."""
    counts = [0] * (len(PROM_BUCKETS) + 1)
    for v in values:
        i = 0
        while i < len(PROM_BUCKETS) and v > PROM_BUCKETS[i]:
            i += 1
        counts[i] += 1
    rank = q * len(values)
    cumulative = 0
    for i, c in enumerate(counts):
        if cumulative + c >= rank:
            if i == len(PROM_BUCKETS):
                return PROM_BUCKETS[-1]
            lower = PROM_BUCKETS[i - 1] if i > 0 else 0.0
            upper = PROM_BUCKETS[i]
            return lower + (upper - lower) * ((rank - cumulative) / c if c else 0.0)
        cumulative += c
    return PROM_BUCKETS[-1]


def otlp_exponential(values: list[float], max_buckets: int = 160, max_scale: int = 20) -> tuple[int, int, list[int]]:
    """(scale, offset, counts) of an OTLP exponential histogram of ``values`` (SDK defaults)."""
    lo, hi = min(values), max(values)
    scale = max_scale
    while scale > -10:
        f = 2.0**scale
        if math.ceil(math.log2(hi) * f) - math.ceil(math.log2(lo) * f) + 1 <= max_buckets:
            break
        scale -= 1
    f = 2.0**scale
    idx = [math.ceil(math.log2(v) * f) - 1 for v in values]
    offset = min(idx)
    counts = [0] * (max(idx) - offset + 1)
    for i in idx:
        counts[i - offset] += 1
    return scale, offset, counts


def accuracy_rows(n: int, repeats: int) -> list[tuple[str, str, list[float]]]:
    rows = []
    for dist_name, gen in (("lognormal", lognormal), ("pareto", pareto)):
        errs = {
            "chokepoint sketch (1%)": [[] for _ in QUANTILES],
            "sketch from OTel exp. histogram (160 buckets)": [[] for _ in QUANTILES],
            "prometheus default buckets": [[] for _ in QUANTILES],
        }
        for seed in range(repeats):
            values = gen(n, seed)
            ordered = sorted(values)
            s = Sketch(0.01)
            s.add_many(values)
            scale, offset, counts = otlp_exponential(values)
            e = Sketch(0.01)
            e.add_exponential_buckets(scale, offset, counts, 0, sum(values), min(values), max(values))
            for i, q in enumerate(QUANTILES):
                want = exact(ordered, q)
                errs["chokepoint sketch (1%)"][i].append(abs(s.quantile(q) - want) / want)
                errs["sketch from OTel exp. histogram (160 buckets)"][i].append(abs(e.quantile(q) - want) / want)
                errs["prometheus default buckets"][i].append(abs(prometheus_quantile(values, q) - want) / want)
        for method, per_q in errs.items():
            rows.append((dist_name, method, [statistics.median(e) for e in per_q]))
    return rows


def speed(n: int, repeats: int) -> dict[str, float]:
    values = lognormal(n, 99)
    add_ns, merge_us, q_us = [], [], []
    for _ in range(repeats):
        s = Sketch()
        t0 = time.process_time()
        s.add_many(values)
        add_ns.append((time.process_time() - t0) / n * 1e9)
        other = Sketch()
        other.add_many(pareto(n // 10, 1))
        t0 = time.process_time()
        for _ in range(100):
            s.copy().merge(other)
        merge_us.append((time.process_time() - t0) / 100 * 1e6)
        t0 = time.process_time()
        for _ in range(100):
            s.quantile(0.99)
        q_us.append((time.process_time() - t0) / 100 * 1e6)
    s = Sketch()
    s.add_many(values)
    return {
        "add_many ns/value": statistics.median(add_ns),
        "copy+merge µs": statistics.median(merge_us),
        "quantile µs": statistics.median(q_us),
        "bins": len(s.bins),
        "to_bytes bytes": len(s.to_bytes()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="values per sample")
    ap.add_argument("--repeats", type=int, default=5, help="seeds (median reported)")
    args = ap.parse_args(argv)
    print(f"relative error vs exact quantile, median of {args.repeats} seeds, n={args.n}")
    for name, gen in (("lognormal", lognormal), ("pareto", pareto)):
        scale, _offset, counts = otlp_exponential(gen(args.n, 0))
        print(f"OTel exponential histogram of {name}: scale {scale}, {len(counts)} buckets, bucket half-width {(2 ** (2.0**-scale / 2) - 1) * 100:.2f} %")
    print()
    print("| data | method | p50 | p90 | p99 | p99.9 |")
    print("|---|---|---|---|---|---|")
    for dist_name, method, errs in accuracy_rows(args.n, args.repeats):
        print(f"| {dist_name} | {method} | " + " | ".join(f"{e * 100:.2f} %" for e in errs) + " |")
    print()
    sp = speed(args.n, args.repeats)
    print("| sketch hot path | median |")
    print("|---|---|")
    for k, v in sp.items():
        print(f"| {k} | {v:,.1f} |" if isinstance(v, float) else f"| {k} | {v} |")


if __name__ == "__main__":
    main()
