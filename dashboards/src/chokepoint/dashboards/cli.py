"""The dashboards' ``chokepoint`` subcommands (registered through ``chokepoint.commands``).

Usage::

    chokepoint dashboard [--api URL[,URL...]] [--host 127.0.0.1] [--port 8050]
    chokepoint rules [--output FILE]
    chokepoint grafana push --url URL [--token TOKEN] [--folder NAME]
    chokepoint grafana generate [--output DIR]

Environment: ``GRAFANA_TOKEN`` (service-account token or API key) when ``--token`` is
not given; ``CHOKEPOINT_TOKEN`` for the collector API.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _dashboard(args: argparse.Namespace) -> int:
    from .app import run

    print(f"chokepoint dashboard on http://{args.host}:{args.port} reading {args.api}", flush=True)
    run(args.api, host=args.host, port=args.port)
    return 0


def add_dashboard_command(subparsers) -> None:
    parser = subparsers.add_parser("dashboard", help="the Dash live dashboard alone, against a running collector")
    parser.add_argument("--api", default="http://127.0.0.1:8787", help="collector REST API base URL, or several comma-separated (merged)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.set_defaults(func=_dashboard)


def _rules(args: argparse.Namespace) -> int:
    from .rules import rules_yaml

    text = rules_yaml()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_rules_command(subparsers) -> None:
    parser = subparsers.add_parser("rules", help="print the Prometheus recording + alert rules")
    parser.add_argument("--output", "-o", help="write to this file instead of stdout")
    parser.set_defaults(func=_rules)


def _grafana_push(args: argparse.Namespace) -> int:
    from .grafana.push import GrafanaPushError, push_dashboards

    token = args.token or os.environ.get("GRAFANA_TOKEN")
    try:
        pushed = push_dashboards(args.url, token=token, folder=args.folder, timeout_s=args.timeout)
    except GrafanaPushError as exc:
        print(f"chokepoint grafana push: {exc}", file=sys.stderr)
        return 1
    for uid, url in pushed:
        print(f"pushed {uid} -> {url}")
    return 0


def _grafana_generate(args: argparse.Namespace) -> int:
    from .grafana.generate import write_all

    for path in write_all(Path(args.output) if args.output else None):
        print(path)
    return 0


def add_grafana_command(subparsers) -> None:
    parser = subparsers.add_parser("grafana", help="Grafana dashboards generated from the metric catalog")
    sub = parser.add_subparsers(dest="grafana_command", metavar="ACTION", required=True)
    push = sub.add_parser("push", help="create or overwrite the dashboards in a Grafana (idempotent by uid)")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000")
    push.add_argument("--token", help="API token (default: $GRAFANA_TOKEN)")
    push.add_argument("--folder", default="chokepoint", help="folder title to put the dashboards in")
    push.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
    push.set_defaults(func=_grafana_push)
    gen = sub.add_parser("generate", help="write dashboard JSON + provisioning files (default: the checked-in location)")
    gen.add_argument("--output", help="directory (default: dashboards/grafana in the source tree)")
    gen.set_defaults(func=_grafana_generate)
