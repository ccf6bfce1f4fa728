"""Where the agent's added CPU goes: a deterministic profile of ``app.py`` requests.

    .venv/bin/python bench/overhead/profile_request.py [--requests 2000] [--variant chokepoint]
        [--top 30] [--save /tmp/request.pstats]

Starts the same back-ends as ``request_cpu.py`` (PostgreSQL, the local HTTP dependency,
the OTLP sink) and one app process for ``--variant`` (any ``request_cpu.py`` variant;
``chokepoint`` by default; ``chokepoint@HEAD``: the committed agent), warms it up, then drives ``--requests`` requests through the
ASGI interface, one at a time, under ``yappi`` on the CPU clock, every thread (the sync
endpoint runs in anyio's worker thread, and the export threads count too; ``cProfile``
sees one thread only).  ``yappi`` is not a dependency of the project: the child imports
it from ``--yappi-path`` (default ``/tmp/yappi``, e.g. ``pip install --target /tmp/yappi
yappi``) or the environment.

It prints two rankings, in µs per request of profiled time (a deterministic profiler
inflates call-heavy Python code several times over, so read them as shares, not as
costs; the costs are ``request_cpu.py``'s):

- by agent function, self + callees, with the application's own work left out: for a
  function of the agent (``chokepoint.instrument``, ``opentelemetry``, ``wrapt``) the
  time of its calls to other agent functions and to builtins counts, the time of its calls
  into the application or its libraries (the wrapped ``execute``, ``send``, the ASGI app)
  does not;
- by agent module, self time (the module's functions plus the builtins they call).

Diagnostic only: no figure from it goes into docs/BENCHMARKS.md except as a ranking.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT_PATHS = (f"{os.sep}chokepoint{os.sep}instrument{os.sep}", f"{os.sep}opentelemetry{os.sep}", f"{os.sep}wrapt{os.sep}")


def is_agent(filename: str) -> bool:
    return any(part in filename for part in AGENT_PATHS)


def is_builtin(func: tuple) -> bool:
    """A C function (yappi: ``(module name, 0, name)``; cProfile: ``("~", 0, name)``)."""
    return func[1] == 0 and os.sep not in func[0]


def label(func: tuple) -> str:
    filename, line, name = func
    if is_builtin(func):
        return f"{filename}.{name}" if filename != "~" else name
    for marker in ("site-packages" + os.sep, "src" + os.sep):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


def module_of(func: tuple) -> str:
    filename = func[0]
    for marker in ("site-packages" + os.sep, "src" + os.sep):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return filename.removesuffix(".py").replace(os.sep, ".")


def rank(stats: dict, requests: int, top: int) -> dict:
    """``stats``: pstats' ``{func: (cc, nc, tt, ct, callers)}``."""
    # edges: caller -> [(callee, tt, ct)] from the callees' caller tables
    callees: dict[tuple, list] = {}
    for callee, (_cc, _nc, _tt, _ct, callers) in stats.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, []).append((callee, edge[2], edge[3]))
    agent_self: dict[tuple, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in stats.items():
        if is_agent(func[0]):
            agent_self[func] = tt + sum(c_tt for callee, c_tt, _ in callees.get(func, ()) if is_builtin(callee))
    # self + callees with the application's work left out: a builtin callee counts whole, an
    # agent callee with its own such share (scaled to this edge), anything else not at all
    inclusive: dict[tuple, float] = {}

    def own(func: tuple, stack: frozenset) -> float:
        if func in inclusive:
            return inclusive[func]
        total = stats[func][2]
        for callee, _c_tt, c_ct in callees.get(func, ()):
            if is_builtin(callee):
                total += c_ct
            elif is_agent(callee[0]) and callee not in stack and callee != func:
                callee_ct = stats[callee][3]
                total += c_ct * (own(callee, stack | {func}) / callee_ct) if callee_ct > 0 else 0.0
        inclusive[func] = total
        return total

    for func in agent_self:
        own(func, frozenset())
    by_module: dict[str, float] = {}
    for func, seconds in agent_self.items():
        by_module[module_of(func)] = by_module.get(module_of(func), 0.0) + seconds
    per = 1e6 / requests
    total_agent_self = sum(agent_self.values()) * per
    total = sum(v[2] for v in stats.values()) * per
    return {
        "total_us": total,
        "agent_self_us": total_agent_self,
        "functions": [(label(f), s * per, stats[f][1] / requests) for f, s in sorted(((f, inclusive[f]) for f in agent_self), key=lambda kv: -kv[1])[:top]],
        "modules": [(m, s * per) for m, s in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]],
    }


def serve(requests: int, yappi_path: str, save: str | None) -> None:
    """Child: warm up, profile ``requests`` requests, print the rankings' raw data as JSON."""
    sys.path.insert(0, HERE)
    import asyncio

    from app import app
    from request_cpu import SCOPE

    statuses = set()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def drive(n: int, offset: int) -> None:
        for i in range(n):
            path = f"/work/{(offset + i) % 100}"
            await app({**SCOPE, "path": path, "raw_path": path.encode()}, receive, send)

    async def run() -> dict:
        await drive(300, 0)
        sys.path.insert(0, yappi_path)
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start(builtins=True, profile_threads=True)
        await drive(requests, 300)
        yappi.stop()
        stats = yappi.convert2pstats(yappi.get_func_stats()).stats
        if save:
            import marshal

            with open(save, "wb") as f:
                marshal.dump(stats, f)
        return stats

    stats = asyncio.run(run())
    if statuses != {200}:
        raise SystemExit(f"unexpected statuses {sorted(statuses)}")
    print(json.dumps(rank(stats, requests, 60)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--variant", default="chokepoint")
    parser.add_argument("--yappi-path", default="/tmp/yappi", help="directory holding yappi, if it is not installed")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save", help="write the raw pstats table (marshal) here")
    parser.add_argument("--load", help="rank a table saved with --save instead of profiling")
    args = parser.parse_args()
    if args.load:
        import marshal

        with open(args.load, "rb") as f:
            report(args, rank(marshal.load(f), args.requests, args.top))
        return
    sys.path.insert(0, HERE)
    from request_cpu import agent_at
    from run import BIN, PY, VARIANT_ENV, bench_backends

    label, *extras = args.variant.split("+")
    name, _, rev = label.partition("@")
    with bench_backends() as (env, _sink), tempfile.TemporaryDirectory(prefix="profile-request-") as tmp:
        venv = {**env, **VARIANT_ENV.get(name, {}), **dict(e.split("=", 1) for e in extras)}
        if rev:
            venv["PYTHONPATH"] = os.pathsep.join(p for p in (agent_at(rev, tmp), venv.get("PYTHONPATH")) if p)
        cmd = [PY, os.path.abspath(__file__), "--serve", str(args.requests), args.yappi_path, args.save or ""]
        if name.startswith("chokepoint"):
            cmd = [str(BIN / "chokepoint-instrument"), *cmd]
        elif name.startswith("otel"):
            cmd = [PY, os.path.join(HERE, "stock_otel.py"), *cmd[1:]]
        out = subprocess.run(cmd, env=venv, check=True, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0})).stdout
    report(args, json.loads(out.strip().splitlines()[-1]))


def report(args, result: dict) -> None:
    print(
        f"{args.variant}: {args.requests} requests, yappi CPU clock; profiled time {result['total_us']:.0f} µs/request, agent self {result['agent_self_us']:.0f}"
    )
    print(f"\n{'µs/req':>8s} {'calls/req':>9s}  agent function (self + agent callees, the app's work left out)")
    for name, us, calls in result["functions"][: args.top]:
        print(f"{us:8.1f} {calls:9.1f}  {name}")
    print(f"\n{'µs/req':>8s}  agent module (self, with the builtins it calls)")
    for name, us in result["modules"][: args.top]:
        print(f"{us:8.1f}  {name}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        i = sys.argv.index("--serve")
        serve(int(sys.argv[i + 1]), sys.argv[i + 2], sys.argv[i + 3] or None)
    else:
        main()
