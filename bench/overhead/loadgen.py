"""HTTP/1.1 keep-alive load generator on raw asyncio sockets (one process, one core).

``python loadgen.py --port P --path /work/1 --connections 16 --duration 6 [--rate 300]``

Without ``--rate``: closed loop, every connection sends its next request as soon as the
previous answer arrives (max throughput).  With ``--rate``: open loop at that many
requests per second in total; latency is measured from the *scheduled* send time, so
a stalled server is not hidden (no coordinated omission).  Prints one JSON line:
``{"requests", "errors", "rps", "p50_ms", "p90_ms", "p99_ms"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(port: int, request: bytes, deadline: float, latencies: list, errors: list, schedule=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            if schedule is None:
                start = time.perf_counter()
                if start >= deadline:
                    return
            else:
                start = next(schedule)
                if start >= deadline:
                    return
                delay = start - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


def _schedule(first: float, interval: float):
    t = first
    while True:
        yield t
        t += interval


async def run(port: int, path: str, connections: int, duration_s: float, rate: float | None) -> dict:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter() + 0.05
    deadline = start + duration_s
    tasks = []
    for n in range(connections):
        schedule = None
        if rate:
            per_connection = connections / rate
            schedule = _schedule(start + n * per_connection / connections, per_connection)
        tasks.append(_connection(port, request, deadline, latencies, errors, schedule))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")

    return {
        "requests": len(ordered),
        "errors": len(errors),
        "rps": len(ordered) / elapsed,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/work/1")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(json.dumps(asyncio.run(run(args.port, args.path, args.connections, args.duration, args.rate))))


if __name__ == "__main__":
    main()
