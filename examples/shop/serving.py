"""Run a FastAPI app under uvicorn and print one "ready" line once it accepts connections.

Shared by ``shop.app``, ``shop.payment`` and ``shop.fulfilment`` so each prints::

    shop ready http://127.0.0.1:8000 switches=slow_query

on stdout (flushed) after the port is bound — launchers (``make demo``, the integration
tests) wait for that line.  SIGTERM / Ctrl-C stop the server gracefully (lifespan
shutdown runs: producers flushed, consumers closed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import uvicorn


def env(name: str, default: str) -> str:
    """An environment variable, or ``default`` when unset or empty."""
    return os.environ.get(name) or default


async def _serve(config: uvicorn.Config, ready_line: Callable[[], str]) -> None:
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(ready_line(), flush=True)
    await task
    if not server.started:
        raise SystemExit(f"error: could not start on {config.host}:{config.port} (see the log above)")


def run(app, host: str, port: int, ready_line: Callable[[], str]) -> None:
    """Serve ``app`` until stopped (blocking)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    asyncio.run(_serve(config, ready_line))
