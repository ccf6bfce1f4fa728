"""Per-request CPU of a trivial FastAPI route driven through the ASGI interface (no server,
no sockets, no I/O), for the server-span piece alone; quieter than the load benchmark.

    .venv/bin/python bench/overhead/asgi_route.py            # runs the three variants below

Variants (each a fresh process pinned to CPU 0, probes off, OTLP to a closed port):
``plain``; ``chokepoint`` (lean ASGI server span, the default); ``chokepoint_upstream_asgi``
(``CHOKEPOINT_ASGI=upstream``: the upstream FastAPI instrumentor).  Prints the minimum and
median µs/request of 5 rounds of 3000 requests each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS, PER_ROUND = 5, 3000
SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
    "path": "/items/1", "raw_path": b"/items/1", "root_path": "", "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")], "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
}  # fmt: skip


def measure() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def run() -> list[float]:
        for _ in range(300):
            await app(dict(SCOPE), receive, send)
        rounds = []
        for _ in range(ROUNDS):
            start = time.process_time()
            for _ in range(PER_ROUND):
                await app(dict(SCOPE), receive, send)
            rounds.append((time.process_time() - start) / PER_ROUND * 1e6)
        return rounds

    rounds = asyncio.run(run())
    print(f"{os.environ.get('BENCH_LABEL', '?'):28s} min {min(rounds):6.0f} us/req  median {statistics.median(rounds):6.0f}")


def main() -> None:
    bin_dir = Path(sys.executable).parent
    me = str(Path(__file__).resolve())
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "CHOKEPOINT_PROBES": "none"}
    variants = [
        ("plain", [sys.executable, me, "--measure"], {}),
        ("chokepoint", [str(bin_dir / "chokepoint-instrument"), sys.executable, me, "--measure"], {}),
        ("chokepoint_upstream_asgi", [str(bin_dir / "chokepoint-instrument"), sys.executable, me, "--measure"], {"CHOKEPOINT_ASGI": "upstream"}),
    ]
    for label, cmd, extra in variants:
        subprocess.run(cmd, env={**env, **extra, "BENCH_LABEL": label}, check=True, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {0}))


if __name__ == "__main__":
    measure() if "--measure" in sys.argv else main()
