"""In-process cost of the span walk: protobuf parse + ``Ingestor.consume_traces`` per span.

Usage (from the repo root)::

    .venv/bin/python bench/ingest_profile.py               # CPU µs/span, median of 5 runs
    .venv/bin/python bench/ingest_profile.py --profile     # plus the cProfile top 25 (tottime)
    mkdir /tmp/base && git archive <rev> collector/src instrument/src | tar -x -C /tmp/base
    .venv/bin/python bench/ingest_profile.py --baseline /tmp/base --pairs 5   # <rev> vs this tree

The span path is the native core where it is built (``make native``);
``CHOKEPOINT_NATIVE_INGEST=0`` times the pure-Python walk.

``--floor`` also times the bare walk: parse, read each span's times and ids and its wanted
attributes, group by trace, nothing else (no classification, no aggregation) — the least any
pure-Python span path over the protobuf objects costs.

``--baseline TREE`` runs this script alternately on TREE's ``collector/src`` and
``instrument/src`` (through ``PYTHONPATH``) and on the installed tree, ``--pairs`` times, and
prints both medians and the median of the paired ratios.

Feeds the same pre-encoded 512-span batches as ``bench/ingest.py`` (40 batches, 20 routes,
HTTP server spans) into a fresh ``Store`` per run and reports CPU time (``time.process_time``)
per span for parse alone and for parse + ingest.  No server, no sockets: what is left is the
walk itself, the figure to compare across revisions (run both in the same minute; the host's
load moves absolute numbers).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import BATCH_SPANS, make_batches


def run_once(bodies: list[bytes]) -> tuple[float, float]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from chokepoint.collector.ingest import Ingestor
    from chokepoint.collector.otlp_json import parse_protobuf
    from chokepoint.collector.store import Store, StoreConfig

    spans = len(bodies) * BATCH_SPANS
    t0 = time.process_time()
    for body in bodies:
        ExportTraceServiceRequest.FromString(body)
    parse = time.process_time() - t0
    ingestor = Ingestor(Store(StoreConfig()))
    t0 = time.process_time()
    for body in bodies:
        ingestor.consume_traces(parse_protobuf(body, ExportTraceServiceRequest))  # as the receivers decode
    total = time.process_time() - t0
    return parse / spans * 1e6, total / spans * 1e6


def bare_walk(bodies: list[bytes]) -> float:
    """CPU µs/span of the least a pure-Python walk does (see ``--floor``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from chokepoint.collector.semconv import SPAN_KEYS

    n = 0
    t0 = time.process_time()
    for body in bodies:
        traces: dict[bytes, list] = {}
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    start, end, tid = span.start_time_unix_nano, span.end_time_unix_nano, span.trace_id
                    if end < start or len(tid) != 16 or len(span.span_id) != 8:
                        continue
                    attrs = {}
                    for kv in span.attributes:
                        if kv.key in SPAN_KEYS:
                            v = kv.value
                            attrs[kv.key] = v.string_value if v.WhichOneof("value") == "string_value" else v.int_value
                    traces.setdefault(tid, []).append((span, attrs, (end - start) / 1e9))
                    n += 1
    return (time.process_time() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the cProfile top 25 of one run")
    parser.add_argument("--floor", action="store_true", help="also time the bare walk (the pure-Python floor)")
    parser.add_argument("--baseline", help="a tree (e.g. a git worktree of an older revision) to compare with, interleaved")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.baseline:
        return compare(Path(args.baseline), args)
    bodies = [b.SerializeToString() for b in make_batches(args.batches)]
    run_once(bodies[:2])  # imports and first allocations
    rows = [run_once(bodies) for _ in range(args.runs)]
    parse = statistics.median(r[0] for r in rows)
    total = statistics.median(r[1] for r in rows)
    print(f"{len(bodies)} x {BATCH_SPANS}-span batches, {args.runs} runs (medians): parse {parse:.2f} µs/span, parse + consume_traces {total:.2f} µs/span")
    print("per run (parse + consume_traces, µs/span):", " ".join(f"{r[1]:.2f}" for r in rows))
    if args.floor:
        floor = statistics.median(bare_walk(bodies) for _ in range(args.runs))
        print(f"bare walk (parse, times, ids, wanted attributes, grouping; median of {args.runs}): {floor:.2f} µs/span")
    if args.profile:
        prof = cProfile.Profile(time.process_time)  # CPU time: wall time on a busy host is mostly waiting
        prof.runcall(run_once, bodies)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


def compare(tree: Path, args) -> int:
    """Baseline tree and this tree alternately, each a fresh process; medians and paired ratio."""
    argv = [sys.executable, __file__, "--batches", str(args.batches), "--runs", str(args.runs)]
    base_env = {**os.environ, "PYTHONPATH": f"{tree / 'collector' / 'src'}{os.pathsep}{tree / 'instrument' / 'src'}"}
    rows: dict[str, list[float]] = {"baseline": [], "this tree": []}
    for _ in range(args.pairs):
        for name, env in (("baseline", base_env), ("this tree", None)):
            out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
            rows[name].append(float(out.split("parse + consume_traces ")[1].split()[0]))
        print(f"baseline {rows['baseline'][-1]:.2f} µs/span, this tree {rows['this tree'][-1]:.2f} µs/span", flush=True)
    ratio = statistics.median(b / a for a, b in zip(rows["baseline"], rows["this tree"], strict=True))
    print(
        f"medians of {args.pairs} pairs: baseline {statistics.median(rows['baseline']):.2f} µs/span, "
        f"this tree {statistics.median(rows['this tree']):.2f} µs/span (this tree / baseline, paired: {ratio:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
