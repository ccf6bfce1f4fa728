"""Agent overhead benchmark: uninstrumented vs chokepoint vs stock OpenTelemetry, side by side.

One command (from the repository root)::

    .venv/bin/python bench/overhead/run.py [--repeats 3] [--duration 6] [--connections 16]

What it does: starts a real PostgreSQL (``scripts/devservices.py``), a small local HTTP
dependency (``downstream.py``) and an OTLP/HTTP sink (``tests/integration/otlp_sink.py``,
standing in for the sidecar); then, for each repeat and each variant in turn, starts
``app.py`` under uvicorn (1 worker, pinned to CPU 0) and drives it with ``loadgen.py``
(pinned to CPU 1):

- max rate (closed loop, ``--connections`` keep-alive connections): throughput, p50, p99,
  and the app's CPU time per request (from ``/proc/<pid>/stat``);
- fixed rate (open loop at ``--rate-fraction``, default 0.25, of the uninstrumented max
  throughput of the same repeat, low enough that every variant keeps up): p50, p99.

Variants: ``none`` (plain uvicorn), ``chokepoint`` (``chokepoint-instrument uvicorn ...``),
``chokepoint_noprobes`` (the same with ``CHOKEPOINT_PROBES=none``: the probes' share),
``otel`` (``stock_otel.py``: the SDK configurator + every instrumentor with default
options, exporting OTLP to the same sink).  Also available with ``--variants``:
``otel-noop`` (``stock_otel.py`` with ``OTEL_SDK_DISABLED=true`` and FastAPI's own
telemetry off: the upstream instrumentors' wrappers around no-op tracers and meters, the
floor for any agent built on them; ``otel-noop_native`` with FastAPI's telemetry on), the per-component variants of ``VARIANT_ENV`` (``chokepoint_server`` etc.),
``chokepoint_gcfreeze`` (``CHOKEPOINT_GC_FREEZE=true``), ``chokepoint_upstream``
(the SQLAlchemy/httpx lean paths and the export delay switched back to upstream) and
``ddtrace`` (Datadog's tracer: ``ddtrace-run`` in a venv of its own, built on first use by
``ddtrace_venv.py`` under the gitignored ``.cache/``, the same app and library versions; its
default integrations for FastAPI, SQLAlchemy, psycopg and httpx; traces sent to
``dd_sink.py``, a local stand-in for the Datadog agent).  ``NAME@REV`` runs the agent
(``instrument/src``) as of git revision ``REV``, as ``request_cpu.py`` does
(``chokepoint@HEAD``: the committed agent, whatever the checkout holds).  After each
measurement the spans the variant delivered to its sink are counted (``exported_spans``):
a variant that should export and delivered nothing stops the run.  Reports medians over repeats and the ratios to
``none``; writes ``bench/overhead/results.json``.  Prints a Markdown table for
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from dd_sink import DdSink  # noqa: E402
from ddtrace_venv import ensure_venv, installed_ddtrace  # noqa: E402

from devservices import PostgresService  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402

PY = str(Path(sys.executable))
BIN = Path(sys.executable).parent
VARIANTS = ("none", "chokepoint", "chokepoint_noprobes", "otel")
# FastAPI >= 0.163 makes its own server and operation spans whenever a global tracer or meter
# provider is set (chokepoint's server span turns them off per request; the upstream FastAPI
# instrumentor does not): "false" turns them off in stock_otel.py / request_cpu.py's app process
NATIVE = "BENCH_FASTAPI_NATIVE_TELEMETRY"
SERVER_ONLY = "sqlalchemy,psycopg,psycopg2,httpx,requests,urllib3,urllib,threading,logging"  # FastAPI is the instrumentation left
VARIANT_ENV = {
    "chokepoint_noprobes": {"CHOKEPOINT_PROBES": "none"},
    # chokepoint by component (request_cpu.py): no probes and only SQLAlchemy + the server span;
    # only the server span; no spans at all (providers, processor threads, client flags)
    "chokepoint_server_sql": {"CHOKEPOINT_PROBES": "none", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "httpx,requests,urllib3,urllib"},
    "chokepoint_server": {"CHOKEPOINT_PROBES": "none", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": SERVER_ONLY},
    "chokepoint_bare": {"CHOKEPOINT_PROBES": "none", "CHOKEPOINT_ASGI": "upstream", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*", NATIVE: "false"},
    # the floor: stock instrumentors' wrappers with the SDK disabled (no-op tracer and meter
    # providers), FastAPI's own telemetry off; _native: with it, as a FastAPI app gets it
    "otel-noop": {"OTEL_SDK_DISABLED": "true", NATIVE: "false"},
    "otel-noop_native": {"OTEL_SDK_DISABLED": "true"},
    "otel-noop_server": {"OTEL_SDK_DISABLED": "true", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": SERVER_ONLY, NATIVE: "false"},
    # the upstream instrumentors chokepoint keeps on this request (SQLAlchemy, psycopg), alone
    "otel-noop_sql": {
        "OTEL_SDK_DISABLED": "true",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "fastapi,starlette,httpx,requests,urllib3,urllib,threading,logging",
        NATIVE: "false",
    },
    "chokepoint_gcfreeze": {"CHOKEPOINT_GC_FREEZE": "true"},  # opt-in; --variants none,chokepoint,chokepoint_gcfreeze
    "chokepoint_upstream": {"CHOKEPOINT_SQLALCHEMY": "upstream", "CHOKEPOINT_HTTPX": "upstream", "CHOKEPOINT_EXPORT_DELAY_MS": "0"},
    # Datadog's tracer with its defaults (traces to dd_sink.py); no telemetry, remote config or
    # profiler traffic, which would go to the same sink and are not what an app pays per request
    "ddtrace": {
        "DD_SERVICE": "bench-overhead",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        "DD_TRACE_STARTUP_LOGS": "false",
    },
}
SILENT = frozenset({"none", "otel-noop", "otel-noop_native", "otel-noop_server", "otel-noop_sql", "chokepoint_bare"})  # export nothing by design
APP_CPU = 0
LOAD_CPU = 1


def exported(variant: str, sink) -> int:
    """Spans the variant's exporter has delivered so far (OTLP sink, or the Datadog sink)."""
    return sink.dd.counts()["spans"] if variant.startswith("ddtrace") else len(sink.spans())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 120.0) -> None:  # generous: a busy host starts apps slowly
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout_s}s")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def app_command(variant: str, port: int) -> list[str]:
    uvicorn = ["uvicorn", "app:app", "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]
    if variant == "none":
        return [PY, "-m", *uvicorn]
    if variant.startswith("chokepoint"):
        return [str(BIN / "chokepoint-instrument"), PY, "-m", *uvicorn]
    if variant.startswith("ddtrace"):
        dd_bin = ensure_venv()
        return [str(dd_bin / "ddtrace-run"), str(dd_bin / "python"), "-m", *uvicorn]
    return [PY, str(HERE / "stock_otel.py"), *uvicorn]


def load(port: int, duration_s: float, connections: int, rate: float | None = None) -> dict:
    cmd = [PY, str(HERE / "loadgen.py"), "--port", str(port), "--duration", str(duration_s), "--connections", str(connections), "--cpu", str(LOAD_CPU)]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(variant: str, env: dict, args, rate: float | None) -> dict:
    port = free_port()
    name, _, rev = variant.partition("@")
    env = {**env, **VARIANT_ENV.get(name, {})}
    if rev:  # the agent as committed at ``rev``, whatever the checkout holds
        from request_cpu import agent_at

        env["PYTHONPATH"] = os.pathsep.join(p for p in (agent_at(rev, args.agent_tmp), env.get("PYTHONPATH")) if p)
    app = subprocess.Popen(app_command(name, port), cwd=HERE, env=env, preexec_fn=lambda: os.sched_setaffinity(0, {APP_CPU}))
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        load(port, args.warmup, args.connections)
        cpu_before = cpu_seconds(app.pid)
        max_rate = load(port, args.duration, args.connections)
        cpu_ms_per_request = (cpu_seconds(app.pid) - cpu_before) * 1000 / max(max_rate["requests"], 1)
        fixed = load(port, args.duration, args.connections, rate or max_rate["rps"] * args.rate_fraction)
    finally:
        app.terminate()
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
    return {
        "rps": max_rate["rps"],
        "max_p50_ms": max_rate["p50_ms"],
        "max_p99_ms": max_rate["p99_ms"],
        "cpu_ms_per_request": cpu_ms_per_request,
        "fixed_rps": fixed["rps"],
        "fixed_p50_ms": fixed["p50_ms"],
        "fixed_p99_ms": fixed["p99_ms"],
        "errors": max_rate["errors"] + fixed["errors"],
    }


@contextlib.contextmanager
def bench_backends():
    """PostgreSQL with the ``items`` table, the local HTTP dependency and the OTLP sink.

    Yields ``(env, sink)``: the environment the bench app reads (database, dependency,
    OTLP endpoint, service name, the venv's ``bin`` first on ``PATH``, the Datadog agent URL
    of ``dd_sink``) and the OTLP sink; the Datadog sink is ``sink.dd``.
    """
    with PostgresService() as pg, OtlpSink() as sink, DdSink() as dd_sink:
        sink.dd = dd_sink
        import psycopg

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
            conn.execute("INSERT INTO items SELECT g, 'item-' || g FROM generate_series(0, 99) g")
        down_port = free_port()
        downstream = subprocess.Popen([PY, str(HERE / "downstream.py"), str(down_port)])
        try:
            wait_http(f"http://127.0.0.1:{down_port}/")
            yield (
                dict(
                    os.environ,
                    BENCH_DB_URL=pg.url,
                    BENCH_DOWNSTREAM_URL=f"http://127.0.0.1:{down_port}/",
                    OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
                    OTEL_SERVICE_NAME="bench-overhead",
                    DD_TRACE_AGENT_URL=dd_sink.url,
                    PATH=f"{BIN}:{os.environ.get('PATH', '')}",
                ),
                sink,
            )
        finally:
            downstream.terminate()
            downstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate-fraction", type=float, default=0.25)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--report", type=Path, help="only re-print the tables of a saved results.json")
    args = parser.parse_args()
    if args.report:
        report_from(args.report)
        return
    variants = [v for v in args.variants.split(",") if v]

    with bench_backends() as (env, sink), tempfile.TemporaryDirectory(prefix="run-overhead-") as args.agent_tmp:
        results: dict[str, list[dict]] = {v: [] for v in variants}
        for repeat in range(args.repeats):
            rate = None
            order = variants[repeat % len(variants) :] + variants[: repeat % len(variants)]
            if "none" in order:  # the fixed rate comes from this repeat's uninstrumented max
                order.remove("none")
                order.insert(0, "none")
            for variant in order:
                before = exported(variant, sink)
                result = measure(variant, env, args, rate)
                result["exported_spans"] = exported(variant, sink) - before
                if result["exported_spans"] <= 0 and variant.partition("@")[0] not in SILENT:
                    raise SystemExit(f"{variant} exported no spans: its figures would flatter it (check its exporter and sink)")
                if variant == "none":
                    rate = result["rps"] * args.rate_fraction
                results[variant].append(result)
                print(f"repeat {repeat + 1} {variant:10s} " + " ".join(f"{k}={v:.2f}" for k, v in result.items()), flush=True)
        spans_at_sink = len(sink.spans())
        dd_counts = sink.dd.counts()

    summary = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    del args.agent_tmp
    (HERE / "results.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "runs": results,
                "median": summary,
                "spans_at_sink": spans_at_sink,
                "ddtrace_sink": dd_counts,
                "ddtrace_version": installed_ddtrace() if "ddtrace" in variants else "",
            },
            indent=2,
        )
    )
    print_table(summary, args, results)


def paired_ratios(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per variant, medians over repeats of ratios to ``none`` *within the same repeat*.

    The machine is shared: its speed drifts between repeats more than the agents differ,
    so each variant is compared with the uninstrumented run next to it.
    """
    base_runs = results.get("none")
    if not base_runs:
        return {}
    out = {}
    for variant, runs in results.items():
        pairs = list(zip(base_runs, runs, strict=False))
        out[variant] = {
            "rps_ratio": statistics.median(r["rps"] / b["rps"] for b, r in pairs),
            "cpu_added_ms": statistics.median(r["cpu_ms_per_request"] - b["cpu_ms_per_request"] for b, r in pairs),
            "fixed_p50_added_ms": statistics.median(r["fixed_p50_ms"] - b["fixed_p50_ms"] for b, r in pairs),
            "fixed_p99_added_ms": statistics.median(r["fixed_p99_ms"] - b["fixed_p99_ms"] for b, r in pairs),
        }
    return out


def print_table(summary: dict, args, results: dict | None = None) -> None:
    print(f"\nmedians over {args.repeats} repeats ({args.duration:.0f} s each, {args.connections} connections)\n")
    print("| variant | max rps | CPU ms/req | p50 ms @max | p99 ms @max | p50 ms @fixed | p99 ms @fixed |")
    print("|---|---|---|---|---|---|---|")
    for variant, s in summary.items():
        print(
            f"| {variant} | {s['rps']:.0f} | {s['cpu_ms_per_request']:.2f} | {s['max_p50_ms']:.1f} | {s['max_p99_ms']:.1f} "
            f"| {s['fixed_p50_ms']:.2f} | {s['fixed_p99_ms']:.2f} |"
        )
    ratios = paired_ratios(results or {})
    if not ratios:
        return
    print("\npaired with the uninstrumented run of the same repeat (median over repeats)\n")
    print("| variant | throughput vs none | CPU ms/req added | p50 ms added @fixed | p99 ms added @fixed |")
    print("|---|---|---|---|---|")
    for variant, r in ratios.items():
        if variant != "none":
            print(f"| {variant} | {r['rps_ratio']:.2f} | {r['cpu_added_ms']:+.2f} | {r['fixed_p50_added_ms']:+.2f} | {r['fixed_p99_added_ms']:+.2f} |")
    ours_name = next((v for v in ratios if v.partition("@")[0] == "chokepoint"), None)
    for other in ("otel", "ddtrace"):
        if ours_name is not None and other in ratios:
            ours, theirs = ratios[ours_name], ratios[other]
            print(
                f"\n{ours_name} / {other}: p50 added at fixed rate {ours['fixed_p50_added_ms']:+.2f} vs {theirs['fixed_p50_added_ms']:+.2f} ms "
                f"({_share(ours['fixed_p50_added_ms'], theirs['fixed_p50_added_ms'])}); CPU per request added {ours['cpu_added_ms']:+.2f} vs "
                f"{theirs['cpu_added_ms']:+.2f} ms ({_share(ours['cpu_added_ms'], theirs['cpu_added_ms'])}); throughput {ours['rps_ratio']:.2f} vs {theirs['rps_ratio']:.2f}"
            )


def _share(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f} of it" if theirs > 0 else "n/a"


def report_from(path: Path) -> None:
    """Re-print the tables of a saved ``results.json``."""
    saved = json.loads(path.read_text())
    print_table(saved["median"], argparse.Namespace(**saved["args"]), saved["runs"])


if __name__ == "__main__":
    main()
