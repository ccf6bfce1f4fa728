"""``chokepoint dashboard --api URL``: the Dash dashboard alone, against a running collector."""

from __future__ import annotations

import argparse
import sys


def _dashboard(args: argparse.Namespace) -> int:
    print("chokepoint dashboard: not yet built in this version", file=sys.stderr)
    return 3


def add_dashboard_command(subparsers) -> None:
    parser = subparsers.add_parser("dashboard", help="the Dash live dashboard alone, against a running collector")
    parser.add_argument("--api", default="http://127.0.0.1:8787", help="collector REST API base URL")
    parser.add_argument("--port", type=int, default=8050)
    parser.set_defaults(func=_dashboard)
