"""``docs/ACCURACY.md`` from a zoo run: per-app table, confusion matrix, per-kind precision and recall,
false alarms on healthy apps, detection and clear times, the host's load during the run.

A run of the whole zoo (``make accuracy``) writes ``docs/ACCURACY.md``; a partial one (the CI
subset, ``-k``) writes ``test-artifacts/ACCURACY.partial.md``.  Every run also leaves
``test-artifacts/zoo-results.json`` (one object per app: ground truth, findings seen, evidence).
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
#: Why an app missed, from reading its findings, ground truth and the rule (kept with the last whole run).
WHY: dict[str, str] = {}


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def write_report(results: dict, zoo, whole: bool) -> Path:
    (zoo.artifacts / "zoo-results.json").write_text(json.dumps({n: r.as_json() for n, r in results.items()}, indent=1, default=str))
    out = REPO / "docs" / "ACCURACY.md" if whole else zoo.artifacts / "ACCURACY.partial.md"
    out.write_text(render(results, zoo))
    return out


def render(results: dict, zoo) -> str:
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
    times = [r.detection_s for r in faulty if r.detection_s is not None]
    if times:
        lines += ["", f"Detection: median {statistics.median(times):.0f} s, max {max(times):.0f} s over {len(times)} hits."]
    return "\n".join(lines) + "\n"


def _got(r) -> str:
    if not r.expected:
        return HEALTHY if not r.above_info else r.above_info[0].split("(")[0]
    if r.hit:
        return r.expected
    return r.top["kind"] if r.top else "(no finding)"
