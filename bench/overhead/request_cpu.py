"""CPU per request of the benchmark's own endpoint (``app.py``: 3 SQLAlchemy queries on
PostgreSQL + one httpx call), driven one request at a time through the ASGI interface:
no server, no load generator, no GIL contention — the agent's added CPU, far quieter
than the load benchmark on a shared machine.

    .venv/bin/python bench/overhead/request_cpu.py [--rounds 30] [--requests 100] [--variants none,chokepoint,...]

Starts PostgreSQL, the local HTTP dependency and an OTLP sink as ``run.py`` does, and
one process per variant (pinned to CPU 0).  Then, ``--rounds`` times, each process in
turn serves ``--requests`` requests and reports the CPU it used per request: user time
(``getrusage().ru_utime``: every thread, so the export threads' work between rounds counts;
the kernel's share, socket I/O the same in every variant, is left out as it is the
noisiest part on a busy host; ``--cpu process`` counts it too).  Rounds
of different variants run back to back, so a burst of load from elsewhere hits them
alike; the "added" column is the median over rounds of (variant − none).

Variants: ``none``; ``chokepoint`` (defaults); ``otel`` (stock OpenTelemetry,
``stock_otel.py``); ``ddtrace`` (Datadog's tracer, ``ddtrace-run`` in its own venv, as in
``run.py``); and the named variants of ``run.py``'s ``VARIANT_ENV``, among them
``otel-noop`` (the stock instrumentors with ``OTEL_SDK_DISABLED=true``: their wrappers
around no-op tracers and meters, the floor for an agent built on them; FastAPI's own
telemetry off; ``otel-noop_native`` with it; ``otel-noop_server`` the FastAPI instrumentor
alone, ``otel-noop_sql`` the SQLAlchemy and psycopg ones alone) and chokepoint by component:
``chokepoint_noprobes`` (no probes), ``chokepoint_server_sql`` (no probes, no HTTP client
spans), ``chokepoint_server`` (the server span alone), ``chokepoint_bare`` (no spans, no
probes, FastAPI's own telemetry off: providers, export threads, client flags).  Any
variant takes extra environment as ``+NAME=VALUE[+NAME=VALUE]`` (e.g.
``chokepoint+CHOKEPOINT_EXPORT_DELAY_MS=0``) to compare a switch in the same run;
``--variant`` (repeatable) takes one variant whose values hold commas
(``--variant "chokepoint+OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=httpx,sqlalchemy"``).
``--against VARIANT`` pairs the added columns with that variant instead of ``none``
(``--variants chokepoint@HEAD~1,chokepoint@HEAD --against chokepoint@HEAD~1``: what a
commit changed, round by round).  ``NAME@REV`` runs the agent (``instrument/src``) as of git revision ``REV`` (``git archive``
into a temporary directory put first on ``PYTHONPATH``): ``chokepoint@HEAD`` measures the
committed agent whatever is being edited in the checkout, ``chokepoint@HEAD~1`` the one
before a change.

The floor table of docs/BENCHMARKS.md::

    .venv/bin/python bench/overhead/request_cpu.py --rounds 12 --requests 80 \
        --variants none,otel-noop,otel-noop_native,otel-noop_server,chokepoint,chokepoint_noprobes,chokepoint_server_sql,chokepoint_server,chokepoint_bare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
    "root_path": "", "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
}  # fmt: skip


def serve_rounds(per_round: int, cpu: str) -> None:
    """Child: one round of ``per_round`` requests per line on stdin; print the CPU µs/request
    used since the previous round started (background threads' work in between included)."""
    sys.path.insert(0, HERE)
    if os.environ.get("BENCH_FASTAPI_NATIVE_TELEMETRY", "").strip().lower() == "false":  # run.py's NATIVE
        from fastapi.telemetry._asgi import NativeTelemetry

        NativeTelemetry.enabled = lambda self: False
    from app import app

    clock = time.process_time if cpu == "process" else (lambda: resource.getrusage(resource.RUSAGE_SELF).ru_utime)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses = set()

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        n = 0
        last = clock()
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in ("", "quit"):
            for _ in range(per_round):
                path = f"/work/{n % 100}"
                n += 1
                await app({**SCOPE, "path": path, "raw_path": path.encode()}, receive, send)
            now = clock()
            print(json.dumps({"cpu_us": (now - last) / per_round * 1e6, "statuses": sorted(statuses)}), flush=True)
            last = now

    asyncio.run(run())


def rev_of(label: str) -> str:
    return label.partition("@")[2]


def agent_at(rev: str, tmp: str) -> str:
    """``instrument/src`` as of git revision ``rev``, extracted under ``tmp``; its path."""
    dest = os.path.join(tmp, rev.replace("/", "_").replace("~", "-"))
    src = os.path.join(dest, "instrument", "src")
    if not os.path.isdir(src):
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", REPO, "archive", rev, "instrument/src"], capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"no agent at revision {rev!r}: {archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds per variant")
    parser.add_argument("--warmup", type=int, default=3, help="rounds not measured")
    parser.add_argument("--requests", type=int, default=100, help="requests per round")
    parser.add_argument("--variants", default="none,chokepoint,chokepoint_noprobes", help="comma-separated variants")
    parser.add_argument("--variant", action="append", default=[], help="one more variant (its values may hold commas)")
    parser.add_argument("--cpu", choices=("user", "process"), default="user", help="user time, or user + system")
    parser.add_argument("--against", default="none", help="the variant the added columns are paired with (e.g. chokepoint@HEAD~1)")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from ddtrace_venv import ensure_venv
    from run import BIN, PY, VARIANT_ENV, bench_backends

    variants = [v for v in args.variants.split(",") if v] + args.variant
    for variant in variants:
        label, *extras = variant.split("+")
        name = label.split("@")[0]
        if name not in ("none", "chokepoint", "otel") and name not in VARIANT_ENV:
            raise SystemExit(f"unknown variant {name!r}: none, chokepoint, otel or one of {', '.join(VARIANT_ENV)}")
        if name.startswith("ddtrace") and rev_of(label):
            raise SystemExit(f"variant {variant!r}: @REV is for chokepoint's agent only")
        if any("=" not in extra for extra in extras):
            raise SystemExit(f"variant {variant!r}: extra environment goes as +NAME=VALUE")
        rev = label.partition("@")[2]
        if rev and subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True).returncode != 0:
            raise SystemExit(f"variant {variant!r}: {rev!r} is not a git revision of this repository")
    with bench_backends() as (env, _sink), tempfile.TemporaryDirectory(prefix="request-cpu-") as tmp:
        procs = {}
        for variant in variants:
            label, *extras = variant.split("+")
            name, _, rev = label.partition("@")
            venv = {**env, **VARIANT_ENV.get(name, {}), **dict(e.split("=", 1) for e in extras)}
            if rev:
                venv["PYTHONPATH"] = os.pathsep.join(p for p in (agent_at(rev, tmp), venv.get("PYTHONPATH")) if p)
            cmd = [PY, os.path.abspath(__file__), "--serve-rounds", str(args.requests), args.cpu]
            if name.startswith("chokepoint"):
                cmd = [str(BIN / "chokepoint-instrument"), *cmd]
            elif name.startswith("otel"):
                cmd = [PY, os.path.join(HERE, "stock_otel.py"), *cmd[1:]]
            elif name.startswith("ddtrace"):
                dd_bin = ensure_venv()
                cmd = [str(dd_bin / "ddtrace-run"), str(dd_bin / "python"), *cmd[1:]]
            procs[variant] = subprocess.Popen(
                cmd, env=venv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0})
            )
        samples: dict[str, list[float]] = {v: [] for v in variants}
        try:
            for n in range(args.warmup + args.rounds):
                order = variants[n % len(variants) :] + variants[: n % len(variants)]
                for variant in order:  # one round each, back to back: the machine's load hits all alike
                    proc = procs[variant]
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    result = json.loads(proc.stdout.readline())
                    if result["statuses"] != [200]:
                        raise SystemExit(f"{variant}: unexpected statuses {result['statuses']}")
                    if n >= args.warmup:
                        samples[variant].append(result["cpu_us"])
        finally:
            for proc in procs.values():
                proc.stdin.close()
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    print(
        f"\n{'variant':48s} {'min':>7s} {'median':>7s} {'added':>7s} {'added%':>7s}  CPU µs/request; "
        f"added = median of per-round differences to {args.against}, added% = the same of per-round ratios"
    )
    for variant, values in samples.items():
        added = ""
        if args.against in samples:
            pairs = list(zip(values, samples[args.against], strict=True))
            added = f"{statistics.median(v - b for v, b in pairs):+7.0f} {statistics.median(100 * (v / b - 1) for v, b in pairs):+6.1f}%"
        print(f"{variant:48s} {min(values):7.0f} {statistics.median(values):7.0f} {added}")


if __name__ == "__main__":
    if "--serve-rounds" in sys.argv:
        i = sys.argv.index("--serve-rounds")
        serve_rounds(int(sys.argv[i + 1]), sys.argv[i + 2])
    else:
        main()
