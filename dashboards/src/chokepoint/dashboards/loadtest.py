"""``chokepoint loadtest``: a headless Locust run watched by the sidecar, then a bottleneck report.

Usage::

    chokepoint serve &                                   # the sidecar, watching the instrumented app
    chokepoint loadtest examples/locustfile.py --users 20 --spawn-rate 5 --duration 60 \\
        --host http://127.0.0.1:8000 [--api http://127.0.0.1:8787] [--output DIR] [--locust PATH]

What it does:

1. Checks before any load: the locustfile exists and Locust can load it with at least one
   User class (``locust -f FILE --list``); the sidecar's REST API answers
   ``/api/v1/health``; the target (``--host``) accepts HTTP connections.  A failed check is
   one line on stderr and exit code 1, nothing else is started.
2. Runs ``locust --headless -u USERS -r SPAWN_RATE -t DURATIONs --csv OUTPUT/locust
   --csv-full-history`` as a child process (its own process group; Locust's gevent stays
   out of this process).  Every 2 seconds it reads Locust's
   ``locust_stats_history.csv`` (rows every second, flushed every ~5 s; percentiles over
   Locust's last 10 s) and the sidecar's ``GET /api/v1/bottlenecks?window=W`` (``--window``) and shows
   one progress line (refreshed in place on a terminal)::

       [loadtest  24s/60s] users 20  rps 38.2  p99 120 ms  failures 0  top: db_pool_saturation shop/sqlalchemy:postgresql (critical 0.81)

3. Writes ``OUTPUT/report.md`` and ``OUTPUT/report.html`` (self-contained: plotly.js is
   inlined, no network needed to open it) next to Locust's CSV files and log: throughput
   and latency over time, the knee point, the sidecar's findings over the whole run
   (``window`` = the run's length) with evidence and recommendations, and the findings
   seen while the load ran (first seen, peak score, how often on top).

Ctrl-C stops Locust (it writes its final statistics), still writes the report, and exits 130.

The knee point
--------------
Where latency started to climb.  From Locust's once-a-second samples of the aggregated
95th percentile (over its last 10 s), counting only samples that carry requests (at least
6): the *baseline* is the lowest p95 of the first half of the run — the best the target
did, so a cold start (first requests slow while caches and connections warm up, which
Locust's 10 s window drags along) does not inflate it; the *threshold* is
``max(2 × baseline, baseline + 50 ms)``; the knee is the first sample after the baseline
sample from which p95 stays at or above the threshold for 3 consecutive samples.  The
report gives its time, the users and Locust's throughput at that moment, and the peak
throughput of the run; "no knee" means latency never left its baseline band — the target
was not pushed past its capacity — unless the target was saturated from its first second
(:func:`find_saturation_from_start`: users rose at least 2× while throughput rose less than
1.25× and p95 rose at least 1.5× with them, comparing the first and last thirds of the
samples): then the report says so, with the throughput it was held at, instead of a knee.
Without a latency knee, a sidecar finding at ``warning`` or above on top within the first
10 s says the same (``LoadtestResult.early_finding``).
p95 rather than p99: with tens of requests per second a 10 s p99 rests on a handful of
requests, too noisy to call a trend.  See :func:`find_knee`.

Options and defaults: ``--users`` 10, ``--spawn-rate`` 2 /s, ``--duration`` 60 s,
``--api`` ``http://127.0.0.1:8787``, ``--output`` ``./chokepoint-loadtest-YYYYmmdd-HHMMSS``,
``--window`` findings window of the progress line (30 s).  ``--host`` is required unless
the locustfile's User class sets ``host``.  ``CHOKEPOINT_TOKEN`` is sent to the sidecar as
a bearer token when set.  Extra environment for the locustfile (e.g. ``SHOP_LOAD_MIX``) is
inherited.

Exit codes: 0 when the run completed and the report was written (failed requests of the
target are in the report, not an error), 1 when a check failed, Locust itself failed, the
target was unreachable throughout, or the sidecar could not be read at the end (the report
is still written with what was collected), 2 for bad options, 130 after Ctrl-C (the report
covers the run up to then).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from chokepoint.collector.report import ReportError, fetch_findings

DEFAULT_API = "http://127.0.0.1:8787"
KNEE_FACTOR = 2.0
KNEE_MIN_RISE_MS = 50.0
KNEE_SUSTAIN_SAMPLES = 3
KNEE_MIN_SAMPLES = 6
SATURATED_USERS_GROWTH = 2.0  # users rose at least this much ...
SATURATED_RPS_GROWTH = 1.25  # ... while throughput rose less than this ...
SATURATED_P95_GROWTH = 1.5  # ... and p95 rose with the users (Little's law)


class LoadtestError(RuntimeError):
    """A check or the run failed; the message is the one line shown to the user."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    """One aggregated row of Locust's stats history (latencies in ms, over Locust's last 10 s)."""

    t_s: float  # seconds since the first sample
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    total_requests: int
    total_failures: int


@dataclass(frozen=True)
class Knee:
    t_s: float
    users: int
    rps: float
    p95_ms: float
    baseline_p95_ms: float
    threshold_ms: float


@dataclass(frozen=True)
class Saturation:
    """A target at its capacity from the start: throughput held while users and latency rose."""

    users_from: float
    users_to: float
    rps: float
    p95_from_ms: float
    p95_to_ms: float


@dataclass
class FindingSeen:
    """A finding (kind, service, target) as seen by the progress polls during the run."""

    kind: str
    service: str
    target: str
    first_seen_s: float
    peak_score: float
    times_on_top: int = 0
    last: dict = field(default_factory=dict)


@dataclass
class LoadtestResult:
    locustfile: str
    host: str | None
    api: str
    users: int
    spawn_rate: float
    duration_s: float
    started_at: str
    output_dir: Path
    samples: list[Sample] = field(default_factory=list)
    per_name: list[dict] = field(default_factory=list)  # rows of locust_stats.csv
    failures: list[dict] = field(default_factory=list)  # rows of locust_failures.csv
    findings: list[dict] = field(default_factory=list)  # the sidecar's findings over the run
    findings_error: str | None = None
    seen: dict[tuple[str, str, str], FindingSeen] = field(default_factory=dict)
    timeline: list[tuple[float, list[dict]]] = field(default_factory=list)  # (t_s, findings) per poll
    locust_exit_code: int | None = None
    interrupted: bool = False

    @property
    def knee(self) -> Knee | None:
        return find_knee(self.samples)

    @property
    def saturated_from_start(self) -> Saturation | None:
        return find_saturation_from_start(self.samples)

    def early_finding(self, within_s: float = 10.0) -> tuple[float, dict] | None:
        """``(t_s, finding)``: the first poll within ``within_s`` of the start whose top finding is ``warning`` or above."""
        for t_s, findings in self.timeline:
            if t_s > within_s:
                break
            if findings and findings[0].get("severity") in ("warning", "critical"):
                return t_s, findings[0]
        return None

    @property
    def total(self) -> dict:
        return next((row for row in self.per_name if row.get("Name") == "Aggregated"), {})

    @property
    def peak_rps(self) -> float:
        return max((s.rps for s in self.samples), default=0.0)


# --------------------------------------------------------------------------- knee (pure)


def find_knee(
    samples: list[Sample],
    factor: float = KNEE_FACTOR,
    min_rise_ms: float = KNEE_MIN_RISE_MS,
    sustain: int = KNEE_SUSTAIN_SAMPLES,
    min_samples: int = KNEE_MIN_SAMPLES,
) -> Knee | None:
    """The first sample from which p95 stays >= max(factor × baseline, baseline + min_rise_ms) for ``sustain`` samples.

    Only samples with requests count.  The baseline is the lowest p95 of the first half of
    them; the search starts after the baseline sample.  ``None`` with fewer than
    ``min_samples`` samples or when latency never left its baseline band.
    """
    usable = [s for s in samples if s.rps > 0 and s.p95_ms is not None]
    if len(usable) < max(min_samples, sustain + 1):
        return None
    first_half = usable[: max(1, len(usable) // 2)]
    lowest = min(range(len(first_half)), key=lambda i: first_half[i].p95_ms)
    baseline = first_half[lowest].p95_ms
    threshold = max(baseline * factor, baseline + min_rise_ms)
    for i in range(lowest + 1, len(usable) - sustain + 1):
        if all(s.p95_ms >= threshold for s in usable[i : i + sustain]):
            s = usable[i]
            return Knee(s.t_s, s.users, s.rps, s.p95_ms, baseline, threshold)
    return None


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def find_saturation_from_start(samples: list[Sample], min_samples: int = KNEE_MIN_SAMPLES) -> Saturation | None:
    """The target was saturated from its first second: no latency knee can show, since the
    baseline is already past capacity.  Compares the first and the last third of the samples
    with requests (medians): users rose ≥ ``SATURATED_USERS_GROWTH``×, throughput rose
    < ``SATURATED_RPS_GROWTH``× and p95 rose ≥ ``SATURATED_P95_GROWTH``×.  ``None`` otherwise."""
    usable = [s for s in samples if s.rps > 0 and s.p95_ms is not None]
    if len(usable) < min_samples:
        return None
    third = max(2, len(usable) // 3)
    head, tail = usable[:third], usable[-third:]
    u0, u1 = _median([s.users for s in head]), _median([s.users for s in tail])
    r0, r1 = _median([s.rps for s in head]), _median([s.rps for s in tail])
    p0, p1 = _median([s.p95_ms for s in head]), _median([s.p95_ms for s in tail])
    if u0 > 0 and u1 >= SATURATED_USERS_GROWTH * u0 and r1 < SATURATED_RPS_GROWTH * r0 and p1 >= SATURATED_P95_GROWTH * p0:
        return Saturation(u0, u1, round(_median([s.rps for s in usable]), 1), p0, p1)
    return None


# --------------------------------------------------------------------------- Locust CSV


def csv_number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "N/A"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_history(path: Path) -> list[Sample]:
    """The aggregated rows of ``locust_stats_history.csv`` (tolerates a half-written last line)."""
    if not path.exists():
        return []
    samples: list[Sample] = []
    first_ts: float | None = None
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") != "Aggregated":
                continue
            ts = csv_number(row.get("Timestamp"))
            rps = csv_number(row.get("Requests/s"))
            if ts is None or rps is None:
                continue
            first_ts = ts if first_ts is None else first_ts
            samples.append(
                Sample(
                    t_s=ts - first_ts,
                    users=int(csv_number(row.get("User Count")) or 0),
                    rps=rps,
                    failures_per_s=csv_number(row.get("Failures/s")) or 0.0,
                    p50_ms=csv_number(row.get("50%")),
                    p95_ms=csv_number(row.get("95%")),
                    p99_ms=csv_number(row.get("99%")),
                    total_requests=int(csv_number(row.get("Total Request Count")) or 0),
                    total_failures=int(csv_number(row.get("Total Failure Count")) or 0),
                )
            )
    return samples


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- checks


def locust_command(explicit: str | None = None) -> str:
    """The ``locust`` executable: ``--locust``, next to this Python (the venv), or on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("locust")
    found = str(beside) if beside.exists() else shutil.which("locust")
    if not found:
        raise LoadtestError("locust not found: pip install 'chokepoint-dashboards[loadtest]' (or give --locust PATH)")
    return found


def check_locustfile(locust: str, locustfile: Path, timeout_s: float = 60.0) -> list[str]:
    """The User classes Locust finds in ``locustfile``; :class:`LoadtestError` when it cannot load it."""
    if not locustfile.is_file():
        raise LoadtestError(f"locustfile not found: {locustfile}")
    try:
        proc = subprocess.run([locust, "-f", str(locustfile), "--list"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LoadtestError(f"invalid locustfile {locustfile}: locust --list did not finish in {timeout_s:.0f}s") from None
    except OSError as exc:
        raise LoadtestError(f"cannot run {locust}: {exc}") from None
    output = (proc.stdout + "\n" + proc.stderr).strip()
    if proc.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"locust exited with code {proc.returncode}"
        raise LoadtestError(f"invalid locustfile {locustfile}: {reason}")
    users = [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]  # first line: "Available Users:"
    if not users:
        raise LoadtestError(f"invalid locustfile {locustfile}: no Locust User class in it")
    return users


def check_api(api: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{api.rstrip('/')}/api/v1/health"
    try:
        resp = requests.get(url, headers=headers, timeout=5)
    except requests.RequestException as exc:
        raise LoadtestError(f"sidecar API unreachable at {api} ({type(exc).__name__}): start `chokepoint serve` or give --api URL") from None
    if resp.status_code != 200:
        raise LoadtestError(f"sidecar API at {api} answered {resp.status_code} on /api/v1/health (token? set CHOKEPOINT_TOKEN)")


def check_target(host: str) -> None:
    """Any HTTP answer will do; a refused connection, a DNS failure or a timeout is unreachable."""
    parts = urllib.parse.urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LoadtestError(f"target URL needs a scheme and a host, e.g. http://127.0.0.1:8000, got {host!r}")
    try:
        requests.get(host, timeout=5, allow_redirects=False)
    except requests.exceptions.InvalidURL as exc:
        raise LoadtestError(f"target URL is invalid: {host} ({exc})") from None
    except requests.RequestException as exc:
        raise LoadtestError(f"target {host} is unreachable ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- run


class ProgressLine:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.width = 0

    def show(self, text: str) -> None:
        if self.tty:
            text = text[: max(20, shutil.get_terminal_size().columns - 1)]
            self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.width = 0
        self.stream.flush()


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _label(finding: dict | None, target_chars: int = 48) -> str:
    if not finding:
        return "none"
    target = str(finding.get("target", ""))
    target = target if len(target) <= target_chars else target[: target_chars - 1] + "…"
    severity = finding.get("severity")
    return f"{finding.get('kind')} {finding.get('service')}/{target} ({severity + ' ' if severity else ''}{float(finding.get('score', 0)):.2f})"


def _record_findings(result: LoadtestResult, t_s: float, findings: list[dict]) -> None:
    result.timeline.append((t_s, findings))
    for rank, finding in enumerate(findings):
        key = (str(finding.get("kind")), str(finding.get("service")), str(finding.get("target")))
        score = float(finding.get("score") or 0.0)
        seen = result.seen.get(key)
        if seen is None:
            seen = result.seen[key] = FindingSeen(*key, first_seen_s=t_s, peak_score=score)
        if score >= seen.peak_score:
            seen.peak_score, seen.last = score, finding
        if rank == 0:
            seen.times_on_top += 1


def _watch(proc, api, token, window_s, duration_s, poll_s, started, output_dir, result, progress) -> None:
    """Poll the sidecar and Locust's history once per ``poll_s`` until Locust exits; show progress."""
    while proc.poll() is None:
        time.sleep(poll_s)
        elapsed = time.monotonic() - started
        try:
            findings = fetch_findings(api, min(window_s, max(elapsed, 5.0)), timeout_s=5, token=token)
        except ReportError:
            findings = []
        _record_findings(result, elapsed, findings)
        samples = read_history(output_dir / "locust_stats_history.csv")
        last = samples[-1] if samples else None
        progress.show(
            f"[loadtest {elapsed:3.0f}s/{duration_s:.0f}s] users {last.users if last else 0}  rps {last.rps if last else 0:.1f}  "
            f"p99 {_fmt_ms(last.p99_ms if last else None)} ms  failures {last.total_failures if last else 0}  top: {_label(findings[0] if findings else None)}"
        )


@contextlib.contextmanager
def _interruptible():
    """Ctrl-C interrupts the run (``KeyboardInterrupt``), also where the shell started the
    command with SIGINT ignored (a background job of a script, as CI runners do)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_loadtest(
    locustfile: Path,
    users: int,
    spawn_rate: float,
    duration_s: float,
    host: str | None = None,
    api: str = DEFAULT_API,
    output_dir: Path | None = None,
    window_s: float = 30.0,
    poll_s: float = 2.0,
    locust: str | None = None,
    token: str | None = None,
    progress: ProgressLine | None = None,
) -> LoadtestResult:
    """Check, run Locust, watch the sidecar, read the results; raises :class:`LoadtestError` for a failed check."""
    token = token if token is not None else os.environ.get("CHOKEPOINT_TOKEN")
    locust = locust_command(locust)
    check_locustfile(locust, locustfile)
    check_api(api, token)
    if host:
        check_target(host)
    stamp = datetime.now(UTC)
    output_dir = output_dir or Path(f"chokepoint-loadtest-{stamp:%Y%m%d-%H%M%S}")
    output_dir.mkdir(parents=True, exist_ok=True)
    result = LoadtestResult(str(locustfile), host, api, users, spawn_rate, duration_s, stamp.isoformat(timespec="seconds"), output_dir)
    progress = progress or ProgressLine()
    argv = [locust, "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(spawn_rate), "-t", f"{max(1, round(duration_s))}s"]
    argv += ["--csv", str(output_dir / "locust"), "--csv-full-history", "--only-summary", "--exit-code-on-error", "0", "--stop-timeout", "5"]
    if host:
        argv += ["--host", host]
    log_path = output_dir / "locust.log"
    with _interruptible():  # also makes Locust's SIGINT the default one (exec resets handled signals)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        try:
            _watch(proc, api, token, window_s, duration_s, poll_s, started, output_dir, result, progress)
        except KeyboardInterrupt:
            result.interrupted = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # Locust writes its final statistics on SIGINT
        finally:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # nothing of Locust's group outlives the run
            progress.end()
    result.locust_exit_code = proc.returncode
    result.samples = read_history(output_dir / "locust_stats_history.csv")
    result.per_name = read_rows(output_dir / "locust_stats.csv")
    result.failures = read_rows(output_dir / "locust_failures.csv")
    run_s = max(time.monotonic() - started, 10.0)
    try:
        result.findings = fetch_findings(api, round(run_s), timeout_s=10, token=token)
    except ReportError as exc:
        result.findings_error = str(exc)
    return result


def run_problem(result: LoadtestResult) -> str | None:
    """The one-line reason a finished run counts as failed, or ``None``."""
    if result.locust_exit_code not in (0, None) and not result.interrupted:
        tail = (result.output_dir / "locust.log").read_text(errors="replace").strip().splitlines()[-1:] if (result.output_dir / "locust.log").exists() else []
        return f"locust exited with code {result.locust_exit_code}: {tail[0] if tail else 'see locust.log'}"
    total = result.total
    requests_n = int(csv_number(total.get("Request Count")) or 0)
    failures_n = int(csv_number(total.get("Failure Count")) or 0)
    if requests_n and failures_n == requests_n and any("Connection" in row.get("Error", "") for row in result.failures):
        return f"target {result.host or '(locustfile host)'} was unreachable: every request failed to connect"
    if result.findings_error:
        return f"could not read the sidecar's findings at the end: {result.findings_error}"
    return None


# --------------------------------------------------------------------------- CLI


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def add_loadtest_command(subparsers) -> None:
    parser = subparsers.add_parser("loadtest", help="run a Locust load test watched by the sidecar, then write a bottleneck report")
    parser.add_argument("locustfile", type=Path, help="the Locust file (Python) with at least one User class")
    parser.add_argument("--users", "-u", type=_positive(int), default=10, help="peak number of concurrent users (default 10)")
    parser.add_argument("--spawn-rate", "-r", type=_positive(float), default=2.0, help="users started per second (default 2)")
    parser.add_argument("--duration", "-t", type=_positive(float), default=60.0, help="run time in seconds (default 60)")
    parser.add_argument("--host", default=None, help="target base URL, e.g. http://127.0.0.1:8000 (default: the locustfile's host)")
    parser.add_argument("--api", default=DEFAULT_API, help=f"the sidecar's REST API (default {DEFAULT_API})")
    parser.add_argument("--output", "-o", type=Path, default=None, help="report directory (default ./chokepoint-loadtest-YYYYmmdd-HHMMSS)")
    parser.add_argument("--window", type=_positive(float), default=30.0, help="findings window of the progress line, seconds (default 30)")
    parser.add_argument("--locust", default=None, help="the locust executable (default: next to this Python, then PATH)")
    parser.set_defaults(func=_loadtest)


def _loadtest(args: argparse.Namespace) -> int:
    from .loadtest_report import write_reports

    try:
        result = run_loadtest(args.locustfile, args.users, args.spawn_rate, args.duration, args.host, args.api, args.output, args.window, locust=args.locust)
    except LoadtestError as exc:
        print(f"chokepoint loadtest: {exc}", file=sys.stderr)
        return 1
    md_path, html_path = write_reports(result)
    top = result.findings[0] if result.findings else None
    knee = result.knee
    if top is not None and top.get("severity") not in ("warning", "critical"):
        print(f"likely bottleneck: none above info (top: {_label(top, 80)})")
    else:
        print(f"likely bottleneck: {_label(top, 80)}")
    saturated = result.saturated_from_start
    if saturated is not None:
        print(f"knee: none — saturated from the start, throughput held near {saturated.rps:.1f} rps while users rose")
    elif knee is not None:
        print(f"knee: {knee.t_s:.0f}s, {knee.users} users, {knee.rps:.1f} rps, p95 {knee.p95_ms:.0f} ms")
    else:
        print("knee: none — latency stayed in its baseline band")
    print(f"report: {md_path}  {html_path}")
    problem = run_problem(result)
    if problem:
        print(f"chokepoint loadtest: {problem}", file=sys.stderr)
        return 1
    if result.interrupted:
        print("chokepoint loadtest: interrupted; the report covers the run up to Ctrl-C", file=sys.stderr)
        return 130
    return 0
