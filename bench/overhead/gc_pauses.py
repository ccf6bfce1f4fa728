"""Garbage collection under the benchmark's own endpoint (``app.py``), driven one request
at a time through the ASGI interface as ``request_cpu.py`` does: collections per 1000
requests and the CPU they take per request, by generation, with and without the agent.

    .venv/bin/python bench/overhead/gc_pauses.py [--requests 60000]
        [--variants "none,chokepoint,chokepoint+CHOKEPOINT_GC_FREEZE=true"]

Starts PostgreSQL, the local HTTP dependency and the OTLP sink (``run.bench_backends``),
then one process per variant in turn (pinned to CPU 0): 300 requests of warm-up, then
``--requests`` measured with a ``gc.callbacks`` hook.  Each collection's cost is the
collecting thread's CPU time (``thread_time``), so time spent preempted on a shared
machine is left out.  Full collections are rare (CPython runs one when the objects
promoted since the last one exceed a quarter of the old generation), so the run must be
long enough to see several: at ~2.5 ms/request, 60 000 requests take ~3 minutes a variant.

Columns: ``tracked`` / ``frozen`` objects at the end; collections per 1000 requests and
GC CPU µs per request for generations 0, 1, 2; the mean CPU of one full collection.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def serve(requests: int) -> None:
    """Child: warm up, serve ``requests`` requests with the GC hook, print one JSON line."""
    sys.path.insert(0, HERE)
    from app import app
    from request_cpu import SCOPE

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses = set()

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def run(count: int, offset: int) -> None:
        for n in range(offset, offset + count):
            path = f"/work/{n % 100}"
            await app({**SCOPE, "path": path, "raw_path": path.encode()}, receive, send)

    asyncio.run(run(300, 0))
    collections = [0, 0, 0]
    cpu_s = [0.0, 0.0, 0.0]
    started = [0.0]

    def hook(phase, info):
        if phase == "start":
            started[0] = time.thread_time()
        else:
            generation = info["generation"]
            collections[generation] += 1
            cpu_s[generation] += time.thread_time() - started[0]

    gc.callbacks.append(hook)
    try:
        asyncio.run(run(requests, 300))
    finally:
        gc.callbacks.remove(hook)
    print(
        json.dumps(
            {
                "statuses": sorted(statuses),
                "tracked": len(gc.get_objects()),
                "frozen": gc.get_freeze_count(),
                "per_1000": [c * 1000 / requests for c in collections],
                "cpu_us": [s * 1e6 / requests for s in cpu_s],
                "full_ms": cpu_s[2] * 1000 / collections[2] if collections[2] else None,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60000)
    parser.add_argument("--variants", default="none,chokepoint,chokepoint+CHOKEPOINT_GC_FREEZE=true")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from run import BIN, PY, bench_backends

    print(f"{'variant':44s} {'tracked':>8s} {'frozen':>8s}  {'collections/1000 req':>20s}  {'GC CPU µs/request':>26s} {'full ms':>8s}")
    print(f"{'':44s} {'':8s} {'':8s}  {'g0':>6s} {'g1':>6s} {'g2':>6s}  {'g0':>6s} {'g1':>6s} {'g2':>6s} {'all':>6s}")
    with bench_backends() as (env, _sink):
        for variant in [v for v in args.variants.split(",") if v]:
            name, *extras = variant.split("+")
            venv = dict(env, **dict(e.split("=", 1) for e in extras))
            if name == "chokepoint_noprobes":
                venv["CHOKEPOINT_PROBES"] = "none"
            cmd = [PY, os.path.abspath(__file__), "--serve", str(args.requests)]
            if name.startswith("chokepoint"):
                cmd = [str(BIN / "chokepoint-instrument"), *cmd]
            out = subprocess.run(cmd, env=venv, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
            if out.returncode != 0 or not out.stdout.strip():
                raise SystemExit(f"{variant}: exited {out.returncode}\n{out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if r["statuses"] != [200]:
                raise SystemExit(f"{variant}: unexpected statuses {r['statuses']}")
            per, cpu = r["per_1000"], r["cpu_us"]
            full = f"{r['full_ms']:8.1f}" if r["full_ms"] is not None else f"{'-':>8s}"
            print(
                f"{variant:44s} {r['tracked']:8d} {r['frozen']:8d}  {per[0]:6.1f} {per[1]:6.1f} {per[2]:6.2f}"
                f"  {cpu[0]:6.1f} {cpu[1]:6.1f} {cpu[2]:6.1f} {sum(cpu):6.1f} {full}",
                flush=True,
            )


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve(int(sys.argv[sys.argv.index("--serve") + 1]))
    else:
        main()
