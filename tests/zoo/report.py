"""``docs/ACCURACY.md`` from a zoo run: per-app table, confusion matrix, per-kind precision and recall,
false alarms on healthy apps, detection and clear times, the host's load during the run.

A run of the whole zoo (``make accuracy``) writes ``docs/ACCURACY.md``; a partial one (the CI
subset, ``-k``) writes ``test-artifacts/ACCURACY.partial.md``.  Every run also leaves
``test-artifacts/zoo-results.json`` (one object per app: ground truth, findings seen, evidence).
A saved run is rendered again, its ground truth checked and its evidence compared with the current
table (``tests/zoo/apps_table.py``), without running anything::

    .venv/bin/python -m tests.zoo.report test-artifacts/zoo-results.json docs/ACCURACY.md
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from tests.zoo.apps_table import APPS_BY_NAME
from tests.zoo.harness import DETECT_LIMIT_S, HEALTHY_RUN_S, TOLERANCE

REPO = Path(__file__).resolve().parents[2]
HEALTHY = "(healthy)"
RUN_KEY = "_run"
#: Why an app missed, from reading its findings, ground truth and the rule (kept with the last whole run).
WHY: dict[str, str] = {
    "flask_pg_seqscan": "the app shares one psycopg connection among 8 gunicorn threads; the statement span includes the wait for that connection's lock, so chokepoint's statement time is ~3x what PostgreSQL spends on it",
    "flask_pg_parallel_scan": "one psycopg connection shared among 8 threads, as above: the span includes the connection-lock wait (PostgreSQL runs the statement in ~250 ms)",
    "flask_sqlalchemy_tx_http": "the outbound span's p99 is several times the dependency's own p99 (~170 ms) on a host at load 15-25: the client span includes CPU/GIL wait in a 16-thread process",
    "fastapi_psycopg_tx_httpx": "as for flask_sqlalchemy_tx_http: client-side p99 of the call vs the dependency's own p99",
    "flask_slow_partner_api": "client-side p99 of the call (CPU/GIL wait included) vs the dependency's own p99, on a host at load 15-25",
    "fastapi_settings_reads": "PostgreSQL served ~200 reads/s of the settings table (two statements per request); the agent's repeated-read check (client_flags) counts a fraction of them",
    "fastapi_httpx_manual_retry": "a hand-written retry loop: each try is a separate httpx call, and the agent counts only a fraction as retries (the dependency saw 3.1 calls per request)",
    "flask_leaky_history": "the evidence is read at detection, ~10 s into the leak: the RSS slope over the window's second half still includes the idle seconds before the load began",
    "fastapi_unbounded_cache": "as flask_leaky_history: detected ~8 s into the leak, the slope still includes idle seconds",
    "fastapi_pymysql_seqscan": "MariaDB runs the statement in ~130 ms on this host while the app's span reads ~300 ms: the span includes the wait for a CPU at load 20-30 (PyMySQL parses in Python)",
    "flask_gunicorn_cpu": "the second attempt reused the service name: the new process's warm-up read as RSS growth (a restart now resets the process's age, snapshot._process_start); the first: the host gave the app ~0.4 core, so the ground truth does not show a CPU-bound app",
    "django_big_json": "(a second attempt led with memory_pressure: the restart's warm-up, see flask_gunicorn_cpu) Django without CommonMiddleware sends no Content-Length (gunicorn chunks the body) and the agent takes response sizes from that header only: no size is known, so no uncompressed_response (an agent fix: count the body when the header is missing)",
    "flask_redis_flags": "(a second attempt led with memory_pressure, as django_big_json) the agent counts repeated reads for SQLAlchemy SELECTs only (client_flags): repeated Redis GETs of the same keys are not counted, so no cacheable_reads (an agent fix)",
    "fastapi_httpx_limits": "the rule judges the dependency's own time as its client p99 minus the wait p99; on a loaded host the client p99 of an httpx call is inflated and the pool finding is skipped (the breakdown's pool_wait vs http shares would tell them apart)",
    "fastapi_sync_cpu": "the host (load 15-25 from other work) gave the app ~0.4-0.5 core: the ground truth does not show a CPU-bound app, and the agent reads ~0.35",
    "starlette_sync_requests": "the loop-lag p99 (a timer's lateness, sampled in time) against the clients' wait p99 (sampled per request): requests queued behind several stalls wait longer than a timer does",
    "fastapi_blocking_sleep": "as starlette_sync_requests: loop-lag p99 against the clients' wait p99",
}


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def write_report(results: dict, zoo, whole: bool) -> Path:
    saved = {n: r.as_json() for n, r in results.items()}
    saved[RUN_KEY] = {"wall_s": zoo.wall_s, "load_samples": zoo.load_samples}
    (zoo.artifacts / "zoo-results.json").write_text(json.dumps(saved, indent=1, default=str))
    out = REPO / "docs" / "ACCURACY.md" if whole else zoo.artifacts / "ACCURACY.partial.md"
    out.write_text(render(results, zoo))
    return out


def render(results: dict, zoo, note: str = "") -> str:
    rows = [results[n] for n in APPS_BY_NAME if n in results]
    faulty = [r for r in rows if r.expected]
    healthy = [r for r in rows if not r.expected]
    hits = sum(r.hit for r in rows)
    load = zoo.load_samples
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Accuracy on the zoo: small apps chokepoint has never seen",
        "",
        f"Produced by `make accuracy` (`.venv/bin/python -m pytest tests/zoo -m zoo`) on {date}; the file is rewritten",
        "by every whole-zoo run.  Each app in `tests/zoo/apps/` is plain user code run under `chokepoint-instrument`",
        "with real PostgreSQL, MariaDB, Redis and Kafka, exporting every second to one collector (1 s buckets);",
        "findings are read from `GET /api/v1/bottlenecks` (default 60 s window) every 2 s for the app's own service.  A faulty",
        f"app must lead with its kind and target at `warning`+ within {DETECT_LIMIT_S:.0f} s of load; a healthy app must show nothing",
        f"above `info` for {HEALTHY_RUN_S:.0f} s.  Ground truth comes from outside chokepoint (see `tests/zoo/harness.py`); evidence",
        f"numbers must be within {100 * TOLERANCE:.0f} % of it.  A miss gets one more attempt from a fresh start.",
        *([note] if note else []),
        "",
        f"**Top-1: {hits}/{len(rows)}** ({100 * hits / max(1, len(rows)):.0f} %): faulty apps {sum(r.hit for r in faulty)}/{len(faulty)}, "
        f"healthy apps without false alarm {sum(r.hit for r in healthy)}/{len(healthy)}.  "
        f"Evidence within {100 * TOLERANCE:.0f} % on {sum(1 for r in faulty if r.hit and r.evidence_ok)}/{sum(r.hit for r in faulty)} hits.  "
        f"Bottleneck real in its ground truth: {sum(r.real is None for r in rows)}/{len(rows)}.",
        "",
        f"Zoo wall time {zoo.wall_s / 60:.1f} min; host load average during the run: "
        + (f"median {statistics.median(load):.1f}, max {max(load):.1f} on 2 cores" if load else "not sampled"),
        "",
        "## Apps",
        "",
        "| app | stack | expected | chokepoint's top-1 | hit | detection s | clear s | evidence (chokepoint / truth) | ground truth real? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        app = APPS_BY_NAME[r.app]
        expected = f"`{r.expected}`" if r.expected else HEALTHY
        if app.secondary:
            expected += f" (> `{app.secondary}`)"
        if r.expected:
            top = f"`{r.top['kind']}` `{r.top['target']}` {r.top['severity']}" if r.top else "no finding"
        else:
            top = "; ".join(r.above_info) if r.above_info else "nothing above info"
        ev = ", ".join(f"{k} {_num(v[0])} / {_num(v[1])}{'' if v[2] else ' ✗'}" for k, v in r.evidence.items())
        real = "yes" if r.real is None else f"no: {r.real}"
        if r.error:
            real += f"; error: {r.error[:160]}"
        det = f"{r.detection_s:.0f}" if r.detection_s is not None else "—"
        clr = f"{r.clear_s:.0f}" if r.clear_s is not None else ("no" if app.fix and r.hit else "—")
        cells = [r.app, r.stack, expected, top, "yes" if r.hit else "**no**", det, clr, ev, real]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += ["", "## Confusion matrix (expected kind × top-1 kind)", ""]
    expected_kinds = sorted({r.expected or HEALTHY for r in rows})
    got_kinds = sorted({_got(r) for r in rows})
    lines.append("| expected \\ top-1 | " + " | ".join(f"`{k}`" for k in got_kinds) + " |")
    lines.append("|---|" + "---|" * len(got_kinds))
    for e in expected_kinds:
        counts = [sum(1 for r in rows if (r.expected or HEALTHY) == e and _got(r) == g) for g in got_kinds]
        lines.append(f"| `{e}` | " + " | ".join(str(c) if c else "" for c in counts) + " |")
    lines += ["", "## Per kind", "", "| kind | apps | recall | precision |", "|---|---|---|---|"]
    for kind in sorted({r.expected for r in faulty}):
        mine = [r for r in faulty if r.expected == kind]
        named = [r for r in rows if _got(r) == kind]
        recall = sum(r.hit for r in mine)
        precision = sum(1 for r in named if r.expected == kind and r.hit)
        lines.append(f"| `{kind}` | {len(mine)} | {recall}/{len(mine)} | {precision}/{len(named)} |")
    from tests.zoo.apps_table import CI_SUBSET

    covered = sorted({APPS_BY_NAME[n].expected for n in CI_SUBSET if APPS_BY_NAME[n].expected})
    missing = sorted({r.expected for r in faulty} - set(covered))
    lines += [
        "",
        "## CI subset (`make test`)",
        "",
        "Apps: " + ", ".join(f"`{n}`" for n in CI_SUBSET) + ".",
        "",
        "Kinds without a CI app (no app of the kind was named right, with its bottleneck real and its evidence within "
        f"{100 * TOLERANCE:.0f} %, in the last whole run): " + (", ".join(f"`{k}`" for k in missing) or "none") + ".",
    ]
    alarms = [r for r in healthy if r.above_info]
    lines += ["", "## False alarms on healthy apps", ""]
    lines += [f"- `{r.app}`: {'; '.join(r.above_info)}" + (f" — {WHY[r.app]}" if r.app in WHY else "") for r in alarms] or ["none"]
    misses = [r for r in faulty if not r.hit]
    lines += ["", "## Misses (what chokepoint said instead)", ""]
    for r in misses:
        top = f"`{r.top['kind']}` on `{r.top['target']}` ({r.top['severity']}): {r.top['summary']}" if r.top else "no finding for the service"
        ranked = (
            f"; `{r.expected}` itself ranked #{r.rank} ({r.expected_finding['severity']}): {r.expected_finding['summary']}"
            if r.expected_finding and r.rank
            else f"; no `{r.expected}` finding at all"
        )
        why = f" — {WHY[r.app]}" if r.app in WHY else ""
        lines.append(f"- `{r.app}` (expected `{r.expected}`): {top}; tops seen {r.seen or 'none'}{ranked}{why}")
    if not misses:
        lines.append("none")
    off = [r for r in faulty if r.hit and r.evidence and not r.evidence_ok]
    lines += ["", f"## Evidence off by more than {100 * TOLERANCE:.0f} % (or missing)", ""]
    for r in off:
        bad = ", ".join(f"{k} {_num(v[0])} vs {_num(v[1])}" for k, v in r.evidence.items() if not v[2])
        why = f" — {WHY[r.app]}" if r.app in WHY else ""
        lines.append(f"- `{r.app}`: {bad}{why}")
    if not off:
        lines.append("none")
    times = [r.detection_s for r in faulty if r.detection_s is not None]
    if times:
        lines += ["", f"Detection: median {statistics.median(times):.0f} s, max {max(times):.0f} s over {len(times)} hits."]
    return "\n".join(lines) + "\n"


def rerender(saved_path: Path, out: Path, wall_s: float = 0.0, load_samples: list | None = None) -> None:
    """Render a saved run again with the current table's ground-truth checks and evidence keys."""
    from types import SimpleNamespace

    from tests.zoo.harness import Result, compare_evidence, derived

    saved = json.loads(saved_path.read_text())
    run = saved.pop(RUN_KEY, {})
    results = {}
    for name, row in saved.items():
        if name not in APPS_BY_NAME:
            continue
        app = APPS_BY_NAME[name]
        r = Result(**{k: v for k, v in row.items() if k in Result.__dataclass_fields__})
        r.truth = derived(r.truth)
        r.above_info = list({a.split(" ")[0]: a for a in reversed(r.above_info)}.values())  # one per finding
        if not r.error:
            try:
                r.real = app.real(r.truth)
            except (KeyError, TypeError) as exc:
                r.real = f"not measured ({exc})"
        if app.expected:
            r.evidence = compare_evidence(app, r.top if r.hit else r.expected_finding, r.truth)
        results[name] = r
    zoo = SimpleNamespace(wall_s=run.get("wall_s", wall_s), load_samples=run.get("load_samples", load_samples or []))
    note = f"This file was rendered again from that run's saved results (`{saved_path.name}`) with the current table's ground-truth checks and evidence keys."
    out.write_text(render(results, zoo, note))


def _got(r) -> str:
    if not r.expected:
        return HEALTHY if not r.above_info else r.above_info[0].split("(")[0]
    if r.hit:
        return r.expected
    return r.top["kind"] if r.top else "(no finding)"


if __name__ == "__main__":
    import sys

    # optional: the run's wall seconds and host load averages, for a file saved without them
    rerender(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0, [float(x) for x in sys.argv[4:]])
