"""The ``chokepoint`` command.

Subcommands live with the part of chokepoint that owns them.  The collector defines
its own (``serve``, ``report``); other installed distributions add theirs through the
``chokepoint.commands`` entry-point group: each entry point is a function
``add(subparsers)`` that registers a subparser whose ``func(args) -> int`` runs it.

Usage::

    chokepoint serve [--no-dashboard]
    chokepoint report [--api URL[,URL...]] [--window S] [--format text|json|markdown]
    chokepoint --help
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

from chokepoint.collector.config import add_arguments as add_collector_arguments


def _serve(args: argparse.Namespace) -> int:
    """``chokepoint serve``: the collector in the foreground until SIGINT/SIGTERM."""
    from chokepoint.collector.serve import serve_foreground

    return serve_foreground(args)


def _report(args: argparse.Namespace) -> int:
    """``chokepoint report``: ranked findings of a running collector."""
    from chokepoint.collector.remote import run_merged_report, split_apis
    from chokepoint.collector.report import run_report

    apis = split_apis(args.api)
    if len(apis) > 1:  # several collectors (sharded by service): merged, ranked together
        return run_merged_report(apis, args.window, args.format)
    return run_report(apis[0] if apis else args.api, args.window, args.format)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chokepoint", description="chokepoint: find the bottleneck of a Python service under load")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="collector + REST API + /metrics (+ Dash dashboard)")
    serve.add_argument("--no-dashboard", action="store_true", help="do not start the Dash dashboard")
    serve.add_argument("--dashboard-port", type=int, default=None, help="Dash dashboard port [CHOKEPOINT_DASHBOARD_PORT, 8050]")
    add_collector_arguments(serve)
    serve.set_defaults(func=_serve)
    report = sub.add_parser("report", help="ranked bottleneck findings")
    report.add_argument("--api", default="http://127.0.0.1:8787", help="collector REST API base URL, or several comma-separated (merged)")
    report.add_argument("--window", type=float, default=60.0, help="seconds of recent data to judge (default 60)")
    report.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    report.set_defaults(func=_report)
    for ep in entry_points(group="chokepoint.commands"):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
