"""Per-call cost of the probes' hot paths, without and with the probe installed.

Usage::

    .venv/bin/python bench/probes/run.py [--repeats 7] [--number 20000]

Each case runs ``--repeats`` times ``--number`` calls without the probe, then the same
with the probe installed (a real SDK MeterProvider, nothing exported), and prints the
median µs per call of each side and the difference — with the probe's histograms and
counters in the OpenTelemetry SDK, and (when ``chokepoint.instrument.lean_metrics`` is
importable) in the agent's lean registry, as ``install_all(meter, lean=...)`` does.  Cases: SQLAlchemy QueuePool
checkout+return (SQLite in memory), ThreadPoolExecutor submit+result, anyio
``to_thread.run_sync`` (what sync FastAPI endpoints go through), pybreaker ``call``,
and a generation-0 ``gc.collect()`` (GC pause callback).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread
import pybreaker
import sqlalchemy as sa
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chokepoint.instrument.probes import install
from chokepoint.instrument.probes.patching import instruments_for


def _median_us(fn, number: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(number)
        runs.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(runs)


def case_sqlalchemy(n):
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.QueuePool, pool_size=1)

    def run(k):
        for _ in range(k):
            engine.raw_connection().close()

    return run


def case_threadpool(n):
    pool = ThreadPoolExecutor(max_workers=1)

    def run(k):
        for _ in range(k):
            pool.submit(int).result()

    return run


def case_anyio(n):
    def run(k):
        async def main():
            for _ in range(k):
                await anyio.to_thread.run_sync(int)

        anyio.run(main)

    return run


def case_pybreaker(n):
    def run(k):
        breaker = pybreaker.CircuitBreaker(name="bench")  # created inside: gets the listener when installed
        for _ in range(k):
            breaker.call(int)

    return run


def case_gc(n):
    def run(k):
        for _ in range(k):
            gc.collect(0)

    return run


CASES = [
    ("sqlalchemy QueuePool checkout+return", "sqlalchemy_pool", case_sqlalchemy, 1.0),
    ("ThreadPoolExecutor submit+result", "threadpool", case_threadpool, 0.25),
    ("anyio to_thread.run_sync", "anyio", case_anyio, 0.1),
    ("pybreaker call", "pybreaker", case_pybreaker, 1.0),
    ("gc.collect(0)", "runtime", case_gc, 0.25),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    try:
        from chokepoint.instrument.lean_metrics import LeanMetrics
    except ImportError:
        LeanMetrics = None
    sdk_meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    lean_meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench-lean")
    if LeanMetrics is not None:
        instruments_for(lean_meter).use_lean(LeanMetrics("bench"))
    print(f"load average before: {os.getloadavg()[0]:.1f} (2-core machine shared with other work: compare the columns, not runs)")
    lean_header = f" {'lean µs':>9s} {'added':>7s}" if LeanMetrics is not None else ""
    print(f"{'case':38s} {'without µs':>11s} {'SDK µs':>9s} {'added':>7s}{lean_header}   (median of {args.repeats})")
    for label, probe_name, make, scale in CASES:
        number = max(100, int(args.number * scale))
        run = make(number)
        run(min(number, 500))  # warm up
        without = _median_us(run, number, args.repeats)
        row = f"{label:38s} {without:11.2f}"
        for meter in (sdk_meter, lean_meter) if LeanMetrics is not None else (sdk_meter,):
            probe = install(probe_name, meter)
            try:
                run = make(number)
                run(min(number, 500))
                with_probe = _median_us(run, number, args.repeats)
            finally:
                probe.uninstall()
            row += f" {with_probe:9.2f} {with_probe - without:7.2f}"
        print(row)


if __name__ == "__main__":
    main()
