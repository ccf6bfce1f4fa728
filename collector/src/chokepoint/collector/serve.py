"""``chokepoint serve``: run the collector service in the foreground.

Builds the config from defaults, ``CHOKEPOINT_*`` variables and flags
(chokepoint.collector.config), starts :class:`~chokepoint.collector.service.CollectorService`,
logs one line per listener, and stops cleanly (flushing persistence) on SIGINT or
SIGTERM.  Exit codes: 0 after a clean stop, 1 when the service could not start (e.g.
a port in use; the message says which), 2 for a bad setting.

Unless ``--no-dashboard`` is given, the Dash dashboard of ``chokepoint-dashboards`` is
served in the same process on ``--dashboard-port`` (default 8050,
``CHOKEPOINT_DASHBOARD_PORT``), reading this collector's REST API; when that
distribution is not installed, a line says so and the collector runs alone
(``chokepoint dashboard --api URL`` serves it from elsewhere).

The collector does not import the dashboards: the layer above plugs in through the
``chokepoint.serve`` entry-point group.  Its ``dashboard`` entry point is a callable
``(api_url, host=, port=, token=) -> server`` returning a started server with ``.url``
and ``.stop()`` (``chokepoint-dashboards`` registers
``chokepoint.dashboards.app:start_dashboard``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from importlib.metadata import entry_points

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService

log = logging.getLogger("chokepoint.collector")

SERVE_PLUGINS_GROUP = "chokepoint.serve"


def serve_foreground(args: argparse.Namespace, ready: threading.Event | None = None, stop: threading.Event | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = CollectorConfig.from_args(args)
    except ValueError as exc:
        print(f"chokepoint serve: bad setting: {exc}", file=sys.stderr)
        return 2
    service = CollectorService(config)
    dashboard = None
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
            dashboard = _start_dashboard(service.api_url, config, args)
            if dashboard is None and getattr(args, "require_dashboard", False):
                return 1
        log.info("chokepoint collector ready (Ctrl-C to stop)")
        if ready is not None:
            ready.set()
        while not stop.wait(0.5):
            pass
        log.info("stopping")
        return 0
    finally:
        if dashboard is not None:
            dashboard.stop()
        service.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_dashboard(api_url: str, config: CollectorConfig, args: argparse.Namespace):
    """The Dash dashboard on ``--dashboard-port``, or ``None`` (logged) when it cannot run."""
    found = [ep for ep in entry_points(group=SERVE_PLUGINS_GROUP) if ep.name == "dashboard"]
    try:
        start_dashboard = found[0].load() if found else None
    except ImportError as exc:
        log.warning("dashboard: chokepoint-dashboards is installed but cannot be loaded (%s); the collector runs alone", exc)
        return None
    if start_dashboard is None:
        log.warning("dashboard: chokepoint-dashboards is not installed; run the collector alone or `pip install chokepoint-dashboards`")
        return None
    port = config.dashboard_port if getattr(args, "dashboard_port", None) is None else args.dashboard_port
    host = config.bind_host
    try:
        server = start_dashboard(api_url, host=host, port=port, token=config.token)
    except OSError as exc:
        log.error("dashboard: cannot listen on %s:%s: %s", host, port, exc)
        return None
    log.info("dashboard: %s", server.url)
    return server
