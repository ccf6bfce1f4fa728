"""Collector ingest benchmark: sustained spans/s per core over OTLP, CPU per million spans, RSS; store memory.

One command (from the repo root)::

    .venv/bin/python bench/ingest.py                 # 5 repeats x 8 s per transport, ~2 min
    .venv/bin/python bench/ingest.py --repeats 3 --seconds 5 --markdown
    .venv/bin/python bench/ingest.py --peers otelcol --markdown   # vs the OpenTelemetry Collector, ~8 min

What it measures
----------------
1. **Ingest** — ``chokepoint serve --no-dashboard --sqlite-path none`` runs as its own
   process on free ports.  A sender in *another* process posts pre-serialized
   512-span ``ExportTraceServiceRequest`` batches (20 routes, HTTP server spans with
   route/method/status attributes and realistic durations) as fast as the collector
   answers, over 4 keep-alive connections, for ``--seconds``.  Side by side:
   OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC protobuf.  Per repeat: accepted
   spans/s (wall clock), collector CPU seconds per million spans and spans per
   collector CPU-second (= spans/s on one fully used core), collector RSS at the end.
   The collector's CPU is read from ``/proc/<pid>/stat`` (user + system).
2. **Memory for 1000 routes x 1 h** — in a fresh process, a ``Store`` with 10 s buckets
   and 1 h memory retention receives 10 services x 100 routes x 20 requests per bucket
   for 360 buckets (a fake clock), closing buckets as the service loop does; reported:
   the process's RSS growth (after a ``gc.collect()``), per route-bucket too.

3. **Side by side with a peer** (``--peers otelcol``, instead of 1 and 2) — chokepoint and
   the OpenTelemetry Collector (``bench/otelcol_peer.py``: OTLP receiver → ``spanmetrics``
   connector → Prometheus exporter) on the same ``--workloads``: telemetrygen over OTLP/gRPC
   (``tg-grpc``) and OTLP/HTTP (``tg-http``), ``--tg-workers`` x ``--tg-rate`` traces/s of
   2 spans, and this script's 512-span batches over OTLP/HTTP (``batches-http``, closed loop).
   Each collector is pinned to CPU 0 with ``taskset``, the load to CPU 1; the collectors
   alternate within every repeat (order reversed every other repeat).  Per run: spans the
   collector says it received (``chokepoint_ingest_spans_total``, the Collector's
   ``otelcol_receiver_accepted_spans``) against what the client generated — the difference
   is lost, at the client or on the way — spans/s, spans per collector CPU-second, RSS.
   The ratio chokepoint/peer is the median of the per-repeat ratios.  telemetrygen's rate is
   what the client reaches on its core, so its spans/s is the load's, not the collector's
   limit; the batch sender's is the collector's.

Medians over the repeats are printed (and the per-repeat figures); ``--markdown``
prints the table for docs/BENCHMARKS.md.  The machine is shared: the sender and the
collector compete for the same cores, so spans/s per *collector CPU-second* is the
figure that transfers to other machines.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH_SPANS = 512
ROUTES = [f"/api/v1/resource{i}/{{id}}" for i in range(20)]


# ---------------------------------------------------------------- payloads


def make_batches(n_batches: int, seed: int = 7):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    batches = []
    base_ns = time.time_ns()
    for b in range(n_batches):
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "bench-shop"
        rs.resource.attributes.add(key="telemetry.sdk.language").value.string_value = "python"
        scope = rs.scope_spans.add()
        scope.scope.name = "opentelemetry.instrumentation.asgi"
        for i in range(BATCH_SPANS):
            route = ROUTES[rng.randrange(len(ROUTES))]
            span = scope.spans.add(
                name=f"GET {route}",
                trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                span_id=rng.getrandbits(64).to_bytes(8, "big"),
                kind=2,
            )
            start = base_ns + (b * BATCH_SPANS + i) * 1000
            span.start_time_unix_nano = start
            span.end_time_unix_nano = start + int(rng.lognormvariate(-4.5, 0.8) * 1e9)
            for key, value in (("http.route", route), ("http.request.method", "GET"), ("url.scheme", "http"), ("server.address", "shop")):
                span.attributes.add(key=key).value.string_value = value
            span.attributes.add(key="http.response.status_code").value.int_value = 500 if rng.random() < 0.01 else 200
        batches.append(request)
    return batches


def to_otlp_json(request) -> bytes:
    from google.protobuf import json_format

    doc = json_format.MessageToDict(request)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                import base64

                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- sender (another process)


def sender_main(transport: str, target: str, seconds: float, connections: int, result_queue, cpus: str | None = None) -> None:
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    batches = make_batches(16)
    if transport == "grpc":
        bodies = batches
    elif transport == "http-json":
        bodies = [to_otlp_json(b) for b in batches]
    else:
        bodies = [b.SerializeToString() for b in batches]
    stop_at = time.monotonic() + seconds
    counts = [0] * connections
    errors = [0] * connections

    def http_worker(k: int) -> None:
        import http.client

        host, port = target.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        content_type = "application/json" if transport == "http-json" else "application/x-protobuf"
        i = k
        while time.monotonic() < stop_at:
            body = bodies[i % len(bodies)]
            i += 1
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                counts[k] += BATCH_SPANS
            else:
                errors[k] += 1
                if resp.status == 429:
                    time.sleep(0.01)
        conn.close()

    def grpc_worker(k: int) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        i = k
        while time.monotonic() < stop_at:
            try:
                stub.Export(bodies[i % len(bodies)], timeout=30)
                counts[k] += BATCH_SPANS
            except grpc.RpcError:
                errors[k] += 1
                time.sleep(0.01)
            i += 1
        channel.close()

    worker = grpc_worker if transport == "grpc" else http_worker
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result_queue.put({"spans": sum(counts), "errors": sum(errors), "wall_s": time.monotonic() - t0})


# ---------------------------------------------------------------- collector process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Collector:
    name = "chokepoint"

    def __init__(self, cpus: str | None = None) -> None:
        self.ports = {"grpc": free_port(), "http": free_port(), "api": free_port()}
        exe = Path(sys.executable).with_name("chokepoint")
        argv = (["taskset", "-c", cpus] if cpus else []) + [str(exe), "serve", "--no-dashboard", "--sqlite-path", "none"]
        argv += ["--otlp-grpc-port", str(self.ports["grpc"]), "--otlp-http-port", str(self.ports["http"]), "--api-port", str(self.ports["api"])]
        env = {**os.environ, "CHOKEPOINT_MAX_INFLIGHT": "256"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "ready" in line:
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError("collector exited before it was ready")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def target(self, transport: str) -> str:
        return f"127.0.0.1:{self.ports['grpc' if transport == 'grpc' else 'http']}"

    def ingested(self) -> float:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.ports['api']}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("chokepoint_ingest_spans_total{"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_ingest(transport: str, seconds: float, connections: int) -> dict:
    collector = Collector()
    try:
        ctx = mp.get_context("spawn")
        # warm-up (imports, first allocations) is not measured
        queue = ctx.Queue()
        warm = ctx.Process(target=sender_main, args=(transport, collector.target(transport), 1.0, connections, queue))
        warm.start()
        queue.get(timeout=120)
        warm.join()
        before_spans, before_cpu = collector.ingested(), proc_cpu_s(collector.proc.pid)
        sender = ctx.Process(target=sender_main, args=(transport, collector.target(transport), seconds, connections, queue))
        sender.start()
        sent = queue.get(timeout=seconds + 120)
        sender.join()
        spans = collector.ingested() - before_spans
        cpu = proc_cpu_s(collector.proc.pid) - before_cpu
        rss = proc_rss_mib(collector.proc.pid)
    finally:
        collector.stop()
    return {
        "transport": transport,
        "spans": spans,
        "sender_spans": sent["spans"],
        "refused_requests": sent["errors"],
        "spans_per_s": spans / sent["wall_s"],
        "cpu_s_per_million": cpu / spans * 1e6 if spans else float("nan"),
        "spans_per_cpu_s": spans / cpu if cpu else float("nan"),
        "collector_cpu_util": cpu / sent["wall_s"],
        "rss_mib": rss,
    }


# ---------------------------------------------------------------- peers, side by side

WORKLOADS = {
    "tg-grpc": "telemetrygen, OTLP/gRPC",
    "tg-http": "telemetrygen, OTLP/HTTP",
    "batches-http": "pre-encoded 512-span OTLP/HTTP batches",
}
COLLECTOR_CPU, LOAD_CPU = "0", "1"  # each collector on one core, the load on the other


def start_variant(variant: str):
    if variant == "otelcol":
        from otelcol_peer import OtelCollector

        return OtelCollector({"grpc": free_port(), "http": free_port(), "prom": free_port(), "internal": free_port()}, COLLECTOR_CPU)
    return Collector(COLLECTOR_CPU)


def run_peer(variant: str, workload: str, args) -> dict:
    """One collector, one workload: what the client generated, what the collector received, its CPU and RSS."""
    from otelcol_peer import run_telemetrygen

    collector = start_variant(variant)
    transport = "grpc" if workload == "tg-grpc" else "http-protobuf"
    target = collector.target(transport)

    def load(seconds: float) -> dict:
        if workload.startswith("tg-"):
            return run_telemetrygen(transport, target, seconds, args.tg_workers, args.tg_rate, LOAD_CPU)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=sender_main, args=(transport, target, seconds, args.connections, queue, LOAD_CPU))
        proc.start()
        sent = queue.get(timeout=seconds + 120)
        proc.join()
        return {"generated_spans": sent["spans"] + sent["errors"] * BATCH_SPANS, "failed_exports": sent["errors"], "wall_s": sent["wall_s"]}

    try:
        pid = collector.proc.pid
        load(1.0)  # warm-up (imports, first allocations, connections) is not measured
        before_spans, before_cpu = collector.ingested(), proc_cpu_s(pid)
        sent = load(args.seconds)
        spans = collector.ingested() - before_spans
        cpu = proc_cpu_s(pid) - before_cpu
        rss = proc_rss_mib(pid)
    finally:
        collector.stop()
    lost = max(0.0, sent["generated_spans"] - spans)
    return {
        "variant": variant,
        "workload": workload,
        "spans": spans,
        "generated_spans": sent["generated_spans"],
        "lost_spans": lost,
        "lost_share": lost / sent["generated_spans"] if sent["generated_spans"] else 0.0,
        "failed_exports": sent["failed_exports"],
        "spans_per_s": spans / sent["wall_s"],
        "spans_per_cpu_s": spans / cpu if cpu else float("nan"),
        "collector_cpu_util": cpu / sent["wall_s"],
        "rss_mib": rss,
    }


def peer_table(results: dict, peer: str) -> list[str]:
    """Markdown rows per workload: both collectors' medians and the median of the paired per-repeat ratios."""
    lines = [
        f"| workload | {peer}, spans per CPU-second | chokepoint | ratio chokepoint/{peer} (paired median) | sustained spans/s {peer} · chokepoint | RSS {peer} · chokepoint | lost at the client {peer} · chokepoint |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, by_variant in results.items():
        ours, theirs = by_variant["chokepoint"], by_variant[peer]
        ratio = statistics.median(a["spans_per_cpu_s"] / b["spans_per_cpu_s"] for a, b in zip(ours, theirs, strict=True))
        o, t = median(ours, "spans_per_cpu_s"), median(theirs, "spans_per_cpu_s")
        lines.append(
            f"| {WORKLOADS[workload]} | {t:,.0f} ({1e6 / t:.1f} µs/span) | {o:,.0f} ({1e6 / o:.1f} µs) | {ratio:.2f} | "
            f"{median(theirs, 'spans_per_s'):,.0f} · {median(ours, 'spans_per_s'):,.0f} | "
            f"{median(theirs, 'rss_mib'):.0f} · {median(ours, 'rss_mib'):.0f} MiB | "
            f"{median(theirs, 'lost_share'):.1%} (max {max(r['lost_share'] for r in theirs):.1%}) · "
            f"{median(ours, 'lost_share'):.1%} (max {max(r['lost_share'] for r in ours):.1%}) |"
        )
    return lines


def main_peers(args) -> int:
    from otelcol_peer import missing

    absent = missing()
    if absent:
        print(f"not built: {', '.join(absent)} (run scripts/provision-otelcol.sh and scripts/provision-telemetrygen.sh)", file=sys.stderr)
        return 2
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    variants = ["chokepoint", *args.peers.split(",")]
    results: dict[str, dict[str, list[dict]]] = {}
    for repeat in range(args.repeats):
        order = variants if repeat % 2 == 0 else variants[::-1]  # interleaved: drift hits both alike
        for workload in args.workloads.split(","):
            for variant in order:
                row = run_peer(variant, workload, args)
                results.setdefault(workload, {}).setdefault(variant, []).append(row)
                print(
                    f"[{repeat + 1}/{args.repeats}] {workload:12s} {variant:10s} received {row['spans']:8.0f} of {row['generated_spans']:8.0f} "
                    f"(lost {row['lost_share']:.1%}, failed exports {row['failed_exports']})  {row['spans_per_s']:8.0f} spans/s  "
                    f"{row['spans_per_cpu_s']:8.0f} spans/CPU-s  CPU {row['collector_cpu_util']:.2f}  RSS {row['rss_mib']:.0f} MiB",
                    flush=True,
                )
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    rate = "unthrottled" if not args.tg_rate else f"{args.tg_rate:g} traces/s per worker"
    print(
        f"\nmedians of {args.repeats} interleaved repeats x {args.seconds:.0f} s; collectors on CPU {COLLECTOR_CPU}, load on CPU {LOAD_CPU}; "
        f"telemetrygen {args.tg_workers} workers, {rate}, 2 spans per trace; load average {' '.join(load_before)} before, {' '.join(load_after)} after"
    )
    for peer in args.peers.split(","):
        lines = peer_table(results, peer)
        if args.markdown:
            print("\n".join(lines))
        else:
            for workload, by_variant in results.items():
                ratio = statistics.median(a["spans_per_cpu_s"] / b["spans_per_cpu_s"] for a, b in zip(by_variant["chokepoint"], by_variant[peer], strict=True))
                print(f"{workload:12s} chokepoint/{peer} spans per CPU-second: {ratio:.2f}")
    if args.markdown:
        print("\nraw:", json.dumps(results))
    return 0


# ---------------------------------------------------------------- memory for 1000 routes x 1 h


def memory_main(result_queue) -> None:
    import gc

    from chokepoint.collector.store import Store, StoreConfig

    rng = random.Random(3)
    now = [1_800_000_000.0]
    rss_before = proc_rss_mib(os.getpid())
    store = Store(StoreConfig(bucket_seconds=10.0, memory_retention_s=3600.0), clock=lambda: now[0])
    services, routes_per_service, per_bucket = 10, 100, 20
    for _bucket in range(360):
        for s in range(services):
            for r in range(routes_per_service):
                store.add_requests(f"svc{s}", f"/route{r}/{{id}}", [rng.lognormvariate(-4.5, 0.8) for _ in range(per_bucket)], errors=0)
        now[0] += 10.0
        store.flush_due()
    gc.collect()
    rss_growth = proc_rss_mib(os.getpid()) - rss_before
    rows = store.endpoints(None, window_s=3600)
    result_queue.put(
        {
            "routes": len(rows),
            "requests": sum(r["count"] for r in rows),
            "rss_growth_mib": rss_growth,
            "rss_per_route_bucket_kib": rss_growth * 1024 / (len(rows) * 360) if rows else float("nan"),
        }
    )


def run_memory() -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=memory_main, args=(queue,))
    proc.start()
    result = queue.get(timeout=900)
    proc.join()
    return result


# ---------------------------------------------------------------- main


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--transports", default="http-protobuf,http-json,grpc")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print the docs/BENCHMARKS.md table")
    parser.add_argument("--peers", default="", help="side by side with these collectors (otelcol) on --workloads instead of --transports")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--tg-workers", type=int, default=4, help="telemetrygen workers")
    parser.add_argument("--tg-rate", type=float, default=5000, help="telemetrygen traces/s per worker (0 = unthrottled)")
    args = parser.parse_args(argv)
    if args.peers:
        return main_peers(args)

    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        for transport in args.transports.split(","):  # interleaved, so drift hits every transport alike
            row = run_ingest(transport, args.seconds, args.connections)
            results.setdefault(transport, []).append(row)
            print(
                f"[{repeat + 1}/{args.repeats}] {transport:14s} {row['spans_per_s']:9.0f} spans/s  "
                f"{row['cpu_s_per_million']:6.2f} CPU s/M spans  {row['spans_per_cpu_s']:9.0f} spans/CPU-s  "
                f"collector CPU {row['collector_cpu_util']:.2f}  RSS {row['rss_mib']:.0f} MiB  refused {row['refused_requests']}",
                flush=True,
            )
    memory = None if args.skip_memory else run_memory()

    print(f"\nmedians of {args.repeats} repeats x {args.seconds:.0f} s, {BATCH_SPANS}-span batches, {args.connections} connections, nproc={os.cpu_count()}")
    header = "| transport | spans/s (wall) | collector CPU s per 1M spans | spans per collector CPU-second | collector CPU used | collector RSS |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for transport, rows in results.items():
        lines.append(
            f"| {transport} | {median(rows, 'spans_per_s'):,.0f} | {median(rows, 'cpu_s_per_million'):.1f} | "
            f"{median(rows, 'spans_per_cpu_s'):,.0f} | {median(rows, 'collector_cpu_util'):.2f} cores | {median(rows, 'rss_mib'):.0f} MiB |"
        )
    if memory:
        lines.append("")
        lines.append(
            f"Store memory, {memory['routes']} routes x 1 h (360 buckets of 10 s, {memory['requests']:,} requests): "
            f"RSS growth {memory['rss_growth_mib']:.0f} MiB ({memory['rss_per_route_bucket_kib']:.2f} KiB per route-bucket)."
        )
    print("\n".join(lines))
    if args.markdown:
        print("\nraw:", json.dumps({"ingest": results, "memory": memory}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
