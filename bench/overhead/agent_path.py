"""The agent's own per-request work, with no I/O: one ``app.py`` request's trace (server
span, ``connect``, 3 SQL statements, 1 httpx call; names and attributes as the
instrumentors set them in a real ``request_cpu.py`` run) fed through the agent's tracer
and processor, and each stage of that path on its own.

    .venv/bin/python bench/overhead/agent_path.py [--rounds 15] [--requests 2000]
        [--variants "head,base@HEAD~1,old+CHOKEPOINT_X=old"]

Each variant is one process (pinned to CPU 0): ``label`` alone is this checkout;
``label@REV`` runs ``instrument/src`` as of git revision ``REV`` (``git archive`` into a
temporary directory put first on ``PYTHONPATH``); ``+NAME=VALUE`` adds environment.
Rounds of the variants run back to back, so load from elsewhere hits them alike; each
figure is the median over rounds of the request thread's CPU time (``thread_time``: the
export thread and time spent preempted are left out), and the ``vs`` column the median of
per-round differences to the first variant.

Stages (µs per request, except where marked per call):

- ``request``: the whole path — 6 spans started and ended on the agent's tracer
  (server span made current as the ASGI middleware does, ``connect`` made current
  around the checkout), the processor's ``on_start``/``on_end`` (latency histograms,
  buffering, breakdown, keep decision, ``queue.put`` for kept traces);
- ``sdk_spans``: the same 6 spans on a tracer provider with no processor;
- ``record_span``: ``AgentInstruments.record_span`` on the 6 finished spans (the agent
  tracer's own: lean spans, or SDK spans with ``CHOKEPOINT_SPANS=sdk``);
- ``compute_breakdown``: on the request's classified spans and request context;
- ``record_request``: the breakdown's counters and the queries histogram;
- ``histogram.record`` / ``counter.add``: one lean value (per call);
- ``request_context``: ``start_request`` + 2 ``record_component_time`` + ``end_request``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SQL = "SELECT id, name FROM items WHERE id = %(id)s"
DB_ATTRIBUTES = {"server.address": "127.0.0.1", "server.port": 5432, "db.namespace": "chokepoint"}
STATEMENT_ATTRIBUTES = {**DB_ATTRIBUTES, "db.query.text": SQL, "db.system.name": "postgresql", "db.operation.name": "SELECT chokepoint"}
CONNECT_ATTRIBUTES = {**DB_ATTRIBUTES, "db.system.name": "postgresql"}
HTTPX_START_ATTRIBUTES = {
    "http.request.method": "GET", "url.full": "http://127.0.0.1:8001/", "server.address": "127.0.0.1",
    "network.peer.address": "127.0.0.1", "server.port": 8001, "network.peer.port": 8001,
}  # fmt: skip
SERVER_START_ATTRIBUTES = {"http.request.method": "GET", "url.scheme": "http", "http.route": "/work/{item_id}"}
STAGES = ("request", "sdk_spans", "record_span", "compute_breakdown", "record_request", "histogram.record", "counter.add", "request_context")


class _NullExporter:
    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def one_request(tracer, n: int) -> None:
    """The spans of one ``app.py`` request, nested and timed as the instrumentors make them."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from chokepoint.instrument.context import record_component_time

    client = SpanKind.CLIENT
    server = tracer.start_span(
        "GET /work/{item_id}", context=None, kind=SpanKind.SERVER, attributes={**SERVER_START_ATTRIBUTES, "url.path": f"/work/{n % 100}"}
    )
    server_token = otel_context.attach(trace.set_span_in_context(server, None))
    connect = tracer.start_span("connect", kind=client, attributes=CONNECT_ATTRIBUTES)
    connect_token = otel_context.attach(trace.set_span_in_context(connect))
    record_component_time("pool_wait", 0.00002)  # the pool probe's checkout time
    otel_context.detach(connect_token)
    connect.end()
    for _ in range(3):
        tracer.start_span("SELECT chokepoint", kind=client, attributes=STATEMENT_ATTRIBUTES).end()
    call = tracer.start_span("GET", kind=client, attributes=HTTPX_START_ATTRIBUTES)
    call.set_attributes({"http.response.status_code": 200, "network.protocol.version": "1.1"})  # httpx_lean: one call
    call.end()
    # chokepoint.instrument.asgi: the response attributes in one call at the end
    server.set_attributes({"http.response.header.content-length": ("55",), "http.response.status_code": 200})
    otel_context.detach(server_token)
    server.end()


def _capture():
    """A span processor keeping finished spans (for the stage benchmarks)."""
    from opentelemetry.sdk.trace import SpanProcessor

    class Capture(SpanProcessor):
        def __init__(self):
            self.spans = []

        def on_end(self, span):
            self.spans.append(span)

    return Capture()


def build():
    """The agent as ``chokepoint-instrument`` configures it (not made global), and a bare
    SDK tracer provider with a capturing processor."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from chokepoint.instrument.agent import Agent
    from chokepoint.instrument.config import AgentConfig

    agent = Agent(AgentConfig.from_env(), span_exporter=_NullExporter(), metric_reader=InMemoryMetricReader())
    bare = TracerProvider()
    capture = _capture()
    bare.add_span_processor(capture)
    return agent, bare, capture


def measure(requests: int) -> dict[str, float]:
    """One round of every stage: µs of this thread's CPU per request (or per call)."""
    from chokepoint.instrument import context
    from chokepoint.instrument.breakdown import classify, compute_breakdown

    agent, bare, capture = STATE
    clock = time.thread_time
    out = {}

    tracer = agent.tracer_provider.get_tracer("bench")
    start = clock()
    for n in range(requests):
        one_request(tracer, n)
    out["request"] = (clock() - start) / requests * 1e6

    bare_tracer = bare.get_tracer("bench")
    start = clock()
    for n in range(requests):
        one_request(bare_tracer, n)
    out["sdk_spans"] = (clock() - start) / requests * 1e6
    capture.spans.clear()

    # the spans the processor receives (lean or SDK, as the agent is configured)
    instruments = agent.instruments
    record_span = instruments.record_span
    spans = []
    instruments.record_span = lambda span: (spans.append(span), record_span(span))[1]
    try:
        one_request(tracer, 0)
    finally:
        del instruments.record_span
    root, children = spans[-1], spans[:-1]
    start = clock()
    for _ in range(requests):
        for span in spans:
            record_span(span)
    out["record_span"] = (clock() - start) / requests * 1e6

    classified = [(span, *record_span(span)) for span in children]
    if classified != [classify(span) for span in children]:
        raise SystemExit("record_span and classify disagree on the benchmark's spans")
    request = context.RequestContext(route="/work/{item_id}", component_seconds={"pool_wait": 0.00002})
    start = clock()
    for _ in range(requests):
        breakdown = compute_breakdown(root, request=request, classified=classified)
    out["compute_breakdown"] = (clock() - start) / requests * 1e6

    record_request = instruments.record_request
    start = clock()
    for _ in range(requests):
        record_request("/work/{item_id}", breakdown, False)
    out["record_request"] = (clock() - start) / requests * 1e6

    histogram, keys = instruments.db_duration, ("db.system.name", "db.query.text")
    values = ("postgresql", "SELECT id, name FROM items WHERE id = $1")
    start = clock()
    for n in range(requests):
        histogram.record(0.0001 + n * 1e-7, values, keys)
    out["histogram.record"] = (clock() - start) / requests * 1e6

    counter, keys = instruments.breakdown_time, ("http.route", "chokepoint.component", "chokepoint.slow")
    values = ("/work/{item_id}", "db", False)
    start = clock()
    for _ in range(requests):
        counter.add(0.001, values, keys)
    out["counter.add"] = (clock() - start) / requests * 1e6

    start = clock()
    for _ in range(requests):
        token = context.start_request("/work/{item_id}")
        context.record_component_time("pool_wait", 0.00002)
        context.record_component_time("pool_wait", 0.00001)
        context.end_request(token)
    out["request_context"] = (clock() - start) / requests * 1e6
    return out


STATE: tuple = ()


def serve(requests: int) -> None:
    """Child: one round of every stage per line on stdin, printed as one JSON line."""
    global STATE
    if os.environ.get("AGENT_PATH_SRC"):  # a baseline checkout must be the one imported
        import chokepoint.instrument

        wanted = os.path.realpath(os.environ["AGENT_PATH_SRC"])
        if not os.path.realpath(chokepoint.instrument.__file__).startswith(wanted):
            raise SystemExit(f"imported {chokepoint.instrument.__file__}, not the baseline under {wanted}")
    STATE = build()
    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(json.dumps(measure(requests)), flush=True)
    STATE[0].shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per variant")
    parser.add_argument("--warmup", type=int, default=2, help="rounds not measured")
    parser.add_argument("--requests", type=int, default=2000, help="requests per stage per round")
    parser.add_argument("--variants", default="head", help="label[@REV][+NAME=VALUE...], comma-separated")
    args = parser.parse_args()

    variants = [v for v in args.variants.split(",") if v]
    tmp = tempfile.mkdtemp(prefix="agent-path-")
    procs = {}
    try:
        for variant in variants:
            label, *extras = variant.split("+")
            env = dict(os.environ, **dict(e.split("=", 1) for e in extras))
            if "@" in label:
                rev = label.split("@", 1)[1]
                dest = os.path.join(tmp, label.replace("/", "_"))
                os.makedirs(dest)
                archive = subprocess.run(["git", "-C", REPO, "archive", rev, "instrument/src"], check=True, capture_output=True).stdout
                subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
                src = os.path.join(dest, "instrument", "src")
                env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
                env["AGENT_PATH_SRC"] = src
            procs[variant] = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--serve", str(args.requests)],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}),
            )  # fmt: skip
        samples: dict[str, list[dict]] = {v: [] for v in variants}
        for n in range(args.warmup + args.rounds):
            order = variants[n % len(variants) :] + variants[: n % len(variants)]
            for variant in order:
                proc = procs[variant]
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"{variant}: the benchmark process exited")
                if n >= args.warmup:
                    samples[variant].append(json.loads(line))
    finally:
        for proc in procs.values():
            if proc.stdin:
                proc.stdin.close()
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)

    base = variants[0]
    header = "".join(f"{v[:22]:>24s}" for v in variants)
    print(f"\n{'stage (µs/request; median of rounds)':36s}{header}")
    for stage in STAGES:
        cells = []
        for variant in variants:
            median = statistics.median(r[stage] for r in samples[variant])
            cell = f"{median:8.2f}"
            if variant != base:
                diff = statistics.median(r[stage] - b[stage] for r, b in zip(samples[variant], samples[base], strict=True))
                cell += f" ({diff:+7.2f})"
            cells.append(f"{cell:>24s}")
        print(f"{stage:36s}{''.join(cells)}")
    if len(variants) > 1:
        print(f"(in parentheses: median of per-round differences to {base})")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve(int(sys.argv[sys.argv.index("--serve") + 1]))
    else:
        main()
