"""``make demo``: the sidecar, the demo shop under ``chokepoint-instrument`` and a scripted load story.

Usage::

    make demo                                   # = .venv/bin/python examples/demo.py
    python examples/demo.py [--switch slow_query] [--story-seconds 180] [--rate RPS] [--window 15]
                            [--once] [--free-ports] [--fallback] [--log-dir DIR] [--summary-json FILE]

What it starts, in this order (and stops in reverse, by process group, on Ctrl-C,
SIGTERM, or at the end of ``--once``; nothing is left running):

1. PostgreSQL and Kafka, throwaway, on free loopback ports — the same harness as the
   tests (``scripts/devservices.py``).  ``make demo`` provisions both first
   (``scripts/provision.sh postgres kafka``: apt + Maven Central); a provisioning
   failure does not stop it.
2. The sidecar: ``chokepoint serve`` (collector, REST API + ``/metrics``, OTLP, and the
   Dash dashboard) with the contract ports 4317/4318/8787/8050 (``--free-ports``: any
   free ports), memory-only store, 1 s buckets, analysis every second over the last
   ``--window`` seconds (``CHOKEPOINT_ANALYZER_WINDOW_S``), so the story shows within
   seconds.  With Kafka it also watches the shop's consumer group (pull-mode lag).
3. The demo shop (payment + shop + fulfilment, ``shop.launch.ShopStack``), each process
   under ``chokepoint-instrument`` exporting to the sidecar every second.
4. Load (``shop.load.run_load``, fixed rate, the focus mix of the story's switch,
   ``shop.load.mix_for``): first a ``warm-up`` of one findings window (``--window``) so
   the shop's start-up (schema, 200 000 seeded products) has left the window, then the
   story, one third of ``--story-seconds`` each:

   ``healthy`` (all switches off) → ``bottleneck`` (``--switch`` on) → ``fixed`` (off again)

Fallback: SQLite, no Kafka
--------------------------
Where PostgreSQL or Kafka cannot start (no PostgreSQL server installed, no Java, jars
not provisioned — devservices' ``ServiceUnavailable``), the demo says so in one line and
goes on without it::

    PostgreSQL not available (PostgreSQL server not found: …): falling back to SQLite — install postgresql for the full demo (scripts/provision.sh postgres)
    Kafka not available (java not found: …): falling back to no Kafka (no order events, no fulfilment worker) — install Java 17+ and run scripts/provision.sh kafka for the full demo

PostgreSQL is replaced by a SQLite file in a temp dir (removed at the end; same schema,
seed data and switches, ``shop.db``); without Kafka only payment and the shop run, paid
orders publish no event and the sidecar watches no consumer group.  Each part falls
back on its own.  ``--fallback`` forces both (SQLite, no Kafka) on a machine that has
everything — for tests, or a lighter demo.  The banner, the "Open the dashboard" line,
a ``mode`` line, every status line and the ``--summary-json`` (``"mode"``,
``"fallback"``) carry the label, e.g. ``[fallback: SQLite, no Kafka]``.  Switches that
need Kafka (``consumer_lag``) are refused with a message saying so (exit 2 with
``--fallback``, exit 1 when Kafka turned out missing).

Status
------
The dashboard URL is printed first; then one status line refreshed in place (a new line
per second when stdout is not a terminal)::

    [bottleneck  37s/60s] slow_query=on 10 rps p99 731 ms | top: slow_query shop/SELECT products.id, products.sku, product… (critical 0.88)
    [fallback: SQLite, no Kafka] [bottleneck  12s/15s] slow_query=on 10 rps p99 708 ms | top: slow_query shop/SELECT products.id, … (critical 0.96)

``rps`` and ``p99`` are what the load generator measured in the last second (from its
documented progress line); ``top`` is the sidecar's current top finding
(``GET /api/v1/bottlenecks?window=WINDOW``).  After each story a summary per phase is printed
(client p99, errors, the finding that was on top most often).  Without ``--once`` the
story repeats until Ctrl-C.

Options: ``--switch`` any switch of ``shop.switches`` that has a focus mix (default
``slow_query``: named as the top finding reliably on PostgreSQL and on SQLite, see
docs/SCENARIOS.md; ``db_pool_saturation`` is the other reliable one); ``--rate``
requests/s (default 20, 10 for ``slow_query``: :data:`RATE_RPS_BY_SWITCH` — a
``slow_query`` search scans 200 000 rows, ~250 ms on PostgreSQL; 6 on the SQLite
fallback, :data:`SQLITE_RATE_RPS_BY_SWITCH`, where the ~100 ms scan runs inside the
shop's own process);
``--window`` the analyzer's and the status line's window in seconds (default 15);
``--fallback`` see above; ``--summary-json FILE`` writes the per-phase summary as JSON
(for tests and scripts: requests sent, errors, p50/p99 overall and per route, the top
finding); ``--log-dir`` keeps the processes' logs there (default: a temp
dir, printed).

Exit codes: 0 after a clean stop (Ctrl-C included), 1 when something could not start
(the message says what and how to fix it), 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import httpx  # noqa: E402
from shop.launch import LaunchError, ShopStack, SwitchUnavailable, resolve_command  # noqa: E402
from shop.load import SWITCH_MIX, mix_for, run_load  # noqa: E402

from devservices import KafkaService, PostgresService, ServiceUnavailable, free_port  # noqa: E402

DEFAULT_SWITCH = "slow_query"
DEFAULT_RATE_RPS = 20.0
#: Story load per switch where the default would drown the host instead of showing the cause
#: (a ``slow_query`` search is a ~250 ms sequential scan of 200 000 rows).
RATE_RPS_BY_SWITCH = {"slow_query": 10.0}
#: The same on the SQLite fallback, where a scan runs inside the shop's own process (and so
#: competes with it for the same cores) instead of in a PostgreSQL backend.
SQLITE_RATE_RPS_BY_SWITCH = {"slow_query": 6.0}
CONTRACT_PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "api": 8787, "dashboard": 8050}
PHASES = ("healthy", "bottleneck", "fixed")
#: The load generator's documented per-second progress line (shop.load): "... rps=50.0 p50=4.1ms p99=12.3ms errors=0 ..."
PROGRESS_RE = re.compile(r"rps=(?P<rps>[\d.]+) .*p99=(?P<p99>[\d.]+|nan)ms errors=(?P<errors>\d+)")
EXPORT_INTERVAL_MS = 1000
TARGET_CHARS = 48  # a finding's target (a SQL statement, a route) shortened to this in the status line


#: Switches that need Kafka (refused in the no-Kafka fallback).
KAFKA_SWITCHES = ("consumer_lag",)
INSTALL_HINT = {
    "PostgreSQL": "install postgresql for the full demo (scripts/provision.sh postgres)",
    "Kafka": "install Java 17+ and run scripts/provision.sh kafka for the full demo",
}


class DemoError(RuntimeError):
    """Something the demo needs could not start; the message says what and how to fix it."""


# --------------------------------------------------------------------------- backend


@dataclass
class Backend:
    """What the demo shop runs on: PostgreSQL or a SQLite file, Kafka or none."""

    db_url: str
    kafka_bootstrap: str | None
    fallbacks: list[str] = field(default_factory=list)  # "SQLite", "no Kafka": what stands in for a missing service

    @property
    def label(self) -> str:
        """``[fallback: SQLite, no Kafka]`` (or the part that applies); empty for the full demo."""
        return f"[fallback: {', '.join(self.fallbacks)}]" if self.fallbacks else ""

    @property
    def services(self) -> str:
        return ", ".join(["Kafka"] * bool(self.kafka_bootstrap) + ["PostgreSQL"] * ("SQLite" not in self.fallbacks))


def start_backend(running: contextlib.ExitStack, fallback: bool) -> Backend:
    """PostgreSQL and Kafka from devservices; where one cannot start, say so and fall back (SQLite / no Kafka)."""
    pg = kafka = None
    if fallback:
        print("  fallback     forced (--fallback): the demo shop on SQLite, without Kafka", flush=True)
    else:
        pg = _try_service(running, "PostgreSQL", PostgresService, "SQLite")
        kafka = _try_service(running, "Kafka", KafkaService, "no Kafka (no order events, no fulfilment worker)")
    backend = Backend(pg.dsn if pg else "", kafka.bootstrap if kafka else None)
    if pg is None:
        sqlite_dir = Path(tempfile.mkdtemp(prefix="chokepoint-demo-sqlite-"))
        running.callback(shutil.rmtree, sqlite_dir, ignore_errors=True)
        backend.db_url = f"sqlite:///{sqlite_dir / 'shop.sqlite'}"
        backend.fallbacks.append("SQLite")
        print(f"  SQLite       ready  {backend.db_url}", flush=True)
    if kafka is None:
        backend.fallbacks.append("no Kafka")
    return backend


def _try_service(running: contextlib.ExitStack, label: str, factory, instead: str):
    try:
        svc = running.enter_context(factory())
    except ServiceUnavailable as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"  {label} not available ({reason}): falling back to {instead} — {INSTALL_HINT[label]}", flush=True)
        return None
    print(f"  {label:<12} ready  {getattr(svc, 'dsn', None) or svc.bootstrap}", flush=True)
    return svc


# --------------------------------------------------------------------------- sidecar


class Sidecar:
    """``chokepoint serve`` as a child process in its own process group."""

    def __init__(self, ports: dict[str, int], log_dir: Path, kafka_bootstrap: str | None, window_s: float) -> None:
        self.ports = ports
        self.window_s = window_s
        self.log_path = log_dir / "sidecar.log"
        self.kafka_bootstrap = kafka_bootstrap
        self.proc: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard']}/"

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    def start(self, timeout_s: float = 60.0) -> Sidecar:
        argv = [
            *resolve_command(["chokepoint"]),
            "serve",
            "--otlp-grpc-port",
            str(self.ports["otlp_grpc"]),
            "--otlp-http-port",
            str(self.ports["otlp_http"]),
            "--api-port",
            str(self.ports["api"]),
            "--dashboard-port",
            str(self.ports["dashboard"]),
            "--sqlite-path",
            "none",
            "--bucket-seconds",
            "1",
        ]
        if self.kafka_bootstrap:
            argv += ["--kafka-bootstrap", self.kafka_bootstrap, "--kafka-poll-interval-s", "1"]
        env = {**os.environ, "CHOKEPOINT_ANALYZE_S": "1", "CHOKEPOINT_ANALYZER_WINDOW_S": f"{self.window_s:g}", "CHOKEPOINT_ANALYZER_BASELINE_S": "120"}
        env.pop("CHOKEPOINT_TOKEN", None)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        pending = {"api": self.api_url + "/api/v1/health", "dashboard": self.dashboard_url}
        while pending:
            if self.proc.poll() is not None:
                raise DemoError(f"chokepoint serve exited with code {self.proc.returncode}:{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise DemoError(f"chokepoint serve not ready after {timeout_s:.0f}s (waiting for {', '.join(pending)}):{_tail(self.log_path)}")
            for name, url in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=2).status_code == 200:
                        del pending[name]
            time.sleep(0.2)
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # anything the sidecar left in its group
            os.killpg(proc.pid, signal.SIGKILL)

    def findings(self, window_s: float) -> list[dict]:
        """The sidecar's ranked findings (best first); empty when it cannot be read right now."""
        try:
            return httpx.get(self.api_url + "/api/v1/bottlenecks", params={"window": window_s}, timeout=3).json().get("findings") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            return []


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n    " + "\n    ".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- status


@dataclass
class PhaseSummary:
    phase: str
    switch: str
    switch_on: bool
    seconds: float = 0.0
    sent: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    routes: dict = field(default_factory=dict)  # route -> {"count", "p50_ms", "p99_ms"} of the load's requests
    switch_state: dict = field(default_factory=dict)  # what the shop said after the switch was set
    top_findings: dict = field(default_factory=dict)  # kind -> how many status ticks it was on top
    top_finding: str | None = None  # most frequent top kind in the second half of the phase
    peak_scores: dict = field(default_factory=dict)  # kind -> highest score seen among all findings in the phase


class StatusLine:
    """One line refreshed in place on a terminal; a plain line per tick otherwise."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._width = 0

    def show(self, text: str) -> None:
        if self.tty:
            text = text[: max(20, shutil.get_terminal_size().columns - 1)]
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def print(self, text: str) -> None:
        """A permanent line (the status line is redrawn below it)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def finding_label(finding: dict | None) -> str:
    if not finding:
        return "none"
    target = str(finding.get("target", "?"))
    if len(target) > TARGET_CHARS:
        target = target[: TARGET_CHARS - 1] + "…"
    severity = finding.get("severity")
    return f"{finding['kind']} {finding.get('service', '?')}/{target} ({severity + ' ' if severity else ''}{finding.get('score', 0):.2f})"


def _nan_to_none(value: float) -> float | None:
    return None if value != value else round(value, 1)


# --------------------------------------------------------------------------- story


class Story:
    """healthy → bottleneck → fixed, under load, with a live status line."""

    def __init__(
        self, stack: ShopStack, sidecar: Sidecar, switch: str, story_seconds: float, rate_rps: float, window_s: float, status: StatusLine, label: str = ""
    ) -> None:
        self.stack, self.sidecar, self.switch = stack, sidecar, switch
        self.prefix = f"{label} " if label else ""  # the fallback label leads every status line
        self.phase_s = story_seconds / len(PHASES)
        self.rate_rps, self.window_s, self.status = rate_rps, window_s, status
        self.mix = mix_for([switch])
        self.stopping = asyncio.Event()

    async def warm_up(self) -> None:
        """Load with every switch off for one findings window, so the shop's start-up (schema, seed data) is out of the window."""
        saved, self.phase_s = self.phase_s, self.window_s
        try:
            await self.run_phase("warm-up", switch_on=False)
        finally:
            self.phase_s = saved

    async def run_once(self) -> list[PhaseSummary]:
        summaries = []
        for phase in PHASES:
            if self.stopping.is_set():
                break
            summaries.append(await self.run_phase(phase, switch_on=phase == "bottleneck"))
        return summaries

    async def run_phase(self, phase: str, switch_on: bool) -> PhaseSummary:
        summary = PhaseSummary(phase, self.switch, switch_on)
        state = await asyncio.to_thread(self.stack.set_switches, **{self.switch: switch_on})
        summary.switch_state = {service: switches.get(self.switch) for service, switches in state.items()}
        latest = {"rps": "-", "p99": "-"}

        def progress(line: str) -> None:
            match = PROGRESS_RE.search(line)
            if match:
                p99 = match["p99"]
                latest.update(rps=f"{float(match['rps']):.0f}", p99="-" if p99 == "nan" else f"{float(p99):.0f}")

        started = time.monotonic()
        load = asyncio.create_task(run_load(self.stack.shop_url, self.rate_rps, self.phase_s, mix=self.mix, timeout_s=10.0, progress=progress))
        second_half: collections.Counter[str] = collections.Counter()
        try:
            while not load.done():
                stop_wait = asyncio.create_task(self.stopping.wait())
                await asyncio.wait({load, stop_wait}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                if self.stopping.is_set():
                    load.cancel()
                    break
                findings = await asyncio.to_thread(self.sidecar.findings, self.window_s)
                top = findings[0] if findings else None
                elapsed = time.monotonic() - started
                for finding in findings:
                    kind, score = finding["kind"], round(float(finding.get("score", 0)), 3)
                    summary.peak_scores[kind] = max(score, summary.peak_scores.get(kind, 0.0))
                if top:
                    summary.top_findings[top["kind"]] = summary.top_findings.get(top["kind"], 0) + 1
                    if elapsed >= self.phase_s / 2:
                        second_half[top["kind"]] += 1
                on_off = "on" if switch_on else "off"
                self.status.show(
                    f"{self.prefix}[{phase:<10} {elapsed:3.0f}s/{self.phase_s:.0f}s] {self.switch}={on_off} {latest['rps']} rps p99 {latest['p99']} ms | top: {finding_label(top)}"
                )
            with contextlib.suppress(asyncio.CancelledError):
                result = await load
                summary.sent, summary.errors = result.sent, result.errors
                summary.p50_ms, summary.p99_ms = _nan_to_none(result.p50_ms()), _nan_to_none(result.p99_ms())
                summary.routes = {
                    name: {"count": route.count, "p50_ms": _nan_to_none(result.p50_ms(name)), "p99_ms": _nan_to_none(result.p99_ms(name))}
                    for name, route in result.per_route.items()
                }
        finally:
            if not load.done():
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await load
        summary.seconds = round(time.monotonic() - started, 1)
        summary.top_finding = second_half.most_common(1)[0][0] if second_half else None
        return summary


def format_summary(summaries: list[PhaseSummary]) -> str:
    lines = [f"{'phase':<12}{'switch':<6}{'sent':>7}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}  top finding (2nd half of the phase)"]
    for s in summaries:
        p50 = "-" if s.p50_ms is None else f"{s.p50_ms:.0f}"
        p99 = "-" if s.p99_ms is None else f"{s.p99_ms:.0f}"
        lines.append(f"{s.phase:<12}{'on' if s.switch_on else 'off':<6}{s.sent:>7}{s.errors:>8}{p50:>9}{p99:>9}  {s.top_finding or 'none'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="examples/demo.py", description="chokepoint demo: sidecar + instrumented demo shop + a load story")
    parser.add_argument("--switch", default=DEFAULT_SWITCH, help=f"the bottleneck of the story (default {DEFAULT_SWITCH}); one of: {', '.join(SWITCH_MIX)}")
    parser.add_argument("--story-seconds", type=float, default=180.0, help="length of one healthy → bottleneck → fixed story (default 180)")
    parser.add_argument("--once", action="store_true", help="run the story once, then stop everything and exit")
    parser.add_argument("--rate", type=float, default=None, help=f"load in requests per second (default {DEFAULT_RATE_RPS:g}; {RATE_RPS_BY_SWITCH})")
    parser.add_argument("--window", type=float, default=15.0, help="the analyzer's window in seconds, also the warm-up (default 15)")
    parser.add_argument("--free-ports", action="store_true", help="use free ports instead of 4317/4318/8787/8050")
    parser.add_argument("--log-dir", type=Path, default=None, help="where the processes' logs go (default: a new temp dir)")
    parser.add_argument("--summary-json", type=Path, default=None, help="write the per-phase summary of each story here (JSON)")
    parser.add_argument("--fallback", action="store_true", help="run the demo shop on SQLite and without Kafka even where PostgreSQL and Kafka are available")
    args = parser.parse_args(argv)
    if args.switch not in SWITCH_MIX:
        parser.error(f"unknown switch {args.switch!r}; choose one of: {', '.join(SWITCH_MIX)}")
    if args.fallback and args.switch in KAFKA_SWITCHES:
        parser.error(f"--switch {args.switch} needs Kafka, which --fallback runs without; choose another switch")
    args.rate_given = args.rate is not None
    if args.rate is None:
        args.rate = default_rate(args.switch, sqlite=args.fallback)
    if args.story_seconds < 3 or args.rate <= 0 or args.window <= 0:
        parser.error("--story-seconds must be >= 3, --rate and --window > 0")
    return args


def default_rate(switch: str, sqlite: bool) -> float:
    """The story's load in requests/s when ``--rate`` is not given."""
    rate = RATE_RPS_BY_SWITCH.get(switch, DEFAULT_RATE_RPS)
    return SQLITE_RATE_RPS_BY_SWITCH.get(switch, rate) if sqlite else rate


def choose_ports(free: bool) -> dict[str, int]:
    if free:
        return {name: free_port() for name in CONTRACT_PORTS}
    busy = []
    for name, port in CONTRACT_PORTS.items():
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{name} {port}")
    if busy:
        raise DemoError(f"port(s) in use on 127.0.0.1: {', '.join(busy)} — stop what listens there, or run with --free-ports")
    return dict(CONTRACT_PORTS)


def _raise_interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


async def _run_story(story: Story, once: bool, summary_json: Path | None, status: StatusLine, backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, story.stopping.set)
    try:
        await story.warm_up()
        number = 0
        while not story.stopping.is_set():
            number += 1
            summaries = await story.run_once()
            ended = "interrupted" if story.stopping.is_set() else "done"
            status.print(f"story {number} {ended}:\n{format_summary(summaries)}")
            if summary_json is not None:
                summary_json.write_text(
                    json.dumps(
                        {
                            "story": number,
                            "interrupted": ended == "interrupted",
                            "mode": story.stack.mode,
                            "fallback": backend.label or None,
                            "phases": [asdict(s) for s in summaries],
                        },
                        indent=2,
                    )
                )
            if once:
                break
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = StatusLine()
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM during start-up unwinds like Ctrl-C
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="chokepoint-demo-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    forced = " [fallback: SQLite, no Kafka]" if args.fallback else ""
    print(f"chokepoint demo{forced} — story: healthy → {args.switch} → fixed, {args.story_seconds:.0f}s, {args.rate:g} rps; logs in {log_dir}", flush=True)
    backend: Backend | None = None
    with contextlib.ExitStack() as running:
        try:
            ports = choose_ports(args.free_ports)
            backend = start_backend(running, args.fallback)
            if "SQLite" in backend.fallbacks and not args.rate_given and default_rate(args.switch, sqlite=True) != args.rate:
                args.rate = default_rate(args.switch, sqlite=True)
                print(f"  load         {args.rate:g} rps: on SQLite a {args.switch} scan runs in the shop's own process", flush=True)
            if backend.kafka_bootstrap is None and args.switch in KAFKA_SWITCHES:
                raise DemoError(
                    f"--switch {args.switch} needs Kafka, which this demo runs without {backend.label}: choose another switch, or {INSTALL_HINT['Kafka']}"
                )
            sidecar = Sidecar(ports, log_dir, backend.kafka_bootstrap, args.window)
            running.callback(sidecar.stop)
            sidecar.start()
            print(f"  sidecar      ready  API {sidecar.api_url}  OTLP {sidecar.otlp_http_url}", flush=True)
            print(f"  dashboard    {sidecar.dashboard_url}", flush=True)
            env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": sidecar.otlp_http_url, "OTEL_METRIC_EXPORT_INTERVAL": str(EXPORT_INTERVAL_MS)}
            env.pop("CHOKEPOINT_TOKEN", None)
            stack = ShopStack(backend.db_url, backend.kafka_bootstrap, wrapper=["chokepoint-instrument"], env=env, log_dir=log_dir)
            running.callback(stack.stop)
            stack.start()
            others = f"payment {stack.payment_url}" + (f", fulfilment {stack.fulfilment_url}" if stack.kafka_enabled else "")
            print(f"  demo shop    ready  {stack.shop_url} ({others}) under chokepoint-instrument", flush=True)
            if backend.label:
                print(f"  mode         {backend.label} — {_fallback_note(backend)}", flush=True)
            print(f"\nOpen the dashboard: {sidecar.dashboard_url}   (Ctrl-C stops everything){' ' + backend.label if backend.label else ''}\n", flush=True)
            story = Story(stack, sidecar, args.switch, args.story_seconds, args.rate, args.window, status, label=backend.label)
            asyncio.run(_run_story(story, args.once, args.summary_json, status, backend))
        except (DemoError, LaunchError, SwitchUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        except httpx.HTTPError as exc:
            print(f"error: the demo shop stopped answering ({type(exc).__name__}: {exc}); logs in {log_dir}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            status.print("interrupted")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            services = f", {backend.services}" if backend and backend.services else ""
            status.print(f"stopping: demo shop, sidecar{services} …")
    print("demo stopped: nothing left running", flush=True)
    return 0


def _fallback_note(backend: Backend) -> str:
    notes = []
    if "SQLite" in backend.fallbacks:
        notes.append("the shop's data in a SQLite file instead of PostgreSQL")
    if "no Kafka" in backend.fallbacks:
        notes.append("no Kafka: paid orders publish no event, no fulfilment worker, consumer_lag unavailable")
    return "; ".join(notes)


if __name__ == "__main__":
    raise SystemExit(main())
