"""Per-call cost of the probes' hot paths, without and with the probe installed.

Usage::

    .venv/bin/python bench/probes/run.py [--repeats 7] [--number 20000]

Each case runs ``--number`` calls without the probe and with it installed (a real SDK
MeterProvider, nothing exported), round-robin ``--repeats`` times, and prints the
median µs per call of each variant and the difference: with the probe's histograms
and counters in the OpenTelemetry SDK, and (when ``chokepoint.instrument.lean_metrics``
is importable) in the agent's lean registry, as ``install_all(meter, lean=...)`` does.

Cases: SQLAlchemy QueuePool checkout+return (SQLite in memory), ThreadPoolExecutor
submit+result, anyio ``to_thread.run_sync`` (what sync FastAPI endpoints go through),
pybreaker ``call``, a generation-0 ``gc.collect()`` (GC pause and CPU-time callback), an
asyncio loop iteration (``await asyncio.sleep(0)``: the runtime probe's timed ``select``),
urllib3 ``_get_conn`` + ``_put_conn`` (no network), and a loopback connect + ``accept``
(the accept-backlog probe's counted ``socket.accept``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread
import pybreaker
import sqlalchemy as sa
import urllib3
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chokepoint.instrument.probes import install
from chokepoint.instrument.probes.patching import instruments_for


def _us_per_call(run, number: int) -> float:
    t0 = time.perf_counter()
    run(number)
    return (time.perf_counter() - t0) / number * 1e6


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


def case_loop_iteration(n):
    def run(k):
        async def main():
            for _ in range(k):
                await asyncio.sleep(0)

        asyncio.run(main())

    return run


def case_urllib3(n):
    pool = urllib3.HTTPConnectionPool("127.0.0.1", 9, maxsize=1, block=True)

    def run(k):
        for _ in range(k):
            pool._put_conn(pool._get_conn())

    return run


def case_accept(n):
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    address = server.getsockname()

    def run(k):
        for _ in range(k):
            client = socket.create_connection(address)
            server.accept()[0].close()
            client.close()

    return run


CASES = [
    ("sqlalchemy QueuePool checkout+return", "sqlalchemy_pool", case_sqlalchemy, 1.0),
    ("ThreadPoolExecutor submit+result", "threadpool", case_threadpool, 0.25),
    ("anyio to_thread.run_sync", "anyio", case_anyio, 0.1),
    ("pybreaker call", "pybreaker", case_pybreaker, 1.0),
    ("gc.collect(0)", "runtime", case_gc, 0.25),
    ("asyncio loop iteration (sleep(0))", "runtime", case_loop_iteration, 1.0),
    ("urllib3 _get_conn+_put_conn", "urllib3_pool", case_urllib3, 1.0),
    ("loopback connect+accept", "accept_backlog", case_accept, 0.1),
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
    variants = [None, sdk_meter, lean_meter] if LeanMetrics is not None else [None, sdk_meter]
    for label, probe_name, make, scale in CASES:
        number = max(100, int(args.number * scale))
        runs: dict[int, list[float]] = {i: [] for i in range(len(variants))}
        for _ in range(args.repeats):  # round-robin, so load changes hit every variant alike
            for i, meter in enumerate(variants):
                probe = install(probe_name, meter) if meter is not None else None
                try:
                    run = make(number)
                    run(min(number, 200))  # warm up
                    runs[i].append(_us_per_call(run, number))
                finally:
                    if probe is not None:
                        probe.uninstall()
        medians = [statistics.median(runs[i]) for i in range(len(variants))]
        row = f"{label:38s} {medians[0]:11.2f}"
        for median in medians[1:]:
            row += f" {median:9.2f} {median - medians[0]:7.2f}"
        print(row)


if __name__ == "__main__":
    main()
