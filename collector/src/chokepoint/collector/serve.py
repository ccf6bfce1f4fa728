"""``chokepoint serve``: run the collector service in the foreground.

Builds the config from defaults, ``CHOKEPOINT_*`` variables and flags
(chokepoint.collector.config), starts :class:`~chokepoint.collector.service.CollectorService`,
logs one line per listener, and stops cleanly (flushing persistence) on SIGINT or
SIGTERM.  Exit codes: 0 after a clean stop, 1 when the service could not start (e.g.
a port in use; the message says which), 2 for a bad setting.

The Dash dashboard is served separately by ``chokepoint dashboard --api URL`` until it is
wired into ``serve``; without ``--no-dashboard`` a line says so.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService

log = logging.getLogger("chokepoint.collector")


def serve_foreground(args: argparse.Namespace, ready: threading.Event | None = None, stop: threading.Event | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = CollectorConfig.from_args(args)
    except ValueError as exc:
        print(f"chokepoint serve: bad setting: {exc}", file=sys.stderr)
        return 2
    service = CollectorService(config)
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        try:
            service.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            print(f"chokepoint serve: could not start: {exc}", file=sys.stderr)
            return 1
        if not getattr(args, "no_dashboard", False):
            log.info("dashboard: not started by serve yet; run `chokepoint dashboard --api %s`", service.api_url)
        log.info("chokepoint collector ready (Ctrl-C to stop)")
        if ready is not None:
            ready.set()
        while not stop.wait(0.5):
            pass
        log.info("stopping")
        return 0
    finally:
        service.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
