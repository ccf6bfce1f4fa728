"""The report of a ``chokepoint loadtest`` run: Markdown and a self-contained HTML page.

Usage::

    from chokepoint.dashboards.loadtest_report import markdown_report, html_report, write_reports
    md_path, html_path = write_reports(result)      # OUTPUT/report.md, OUTPUT/report.html

Both read a :class:`chokepoint.dashboards.loadtest.LoadtestResult` and say the same
things: the run (target, users, duration, requests, failures, latency), the knee point
(method in ``chokepoint.dashboards.loadtest``), the likely bottleneck with its evidence
and recommendation, all findings of the run, the findings seen while the load ran, and
Locust's per-request-name table.  The HTML adds three plotly charts — throughput and
users, latency percentiles with the knee marked, and the sidecar's finding scores over
time — with plotly.js inlined once, so the file opens offline.  Everything that came
from outside (finding texts, request names, errors) is escaped.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from chokepoint.collector.evidence import evidence_items
from chokepoint.collector.report import ABOVE_INFO
from chokepoint.semconv.catalog import FINDINGS_BY_KIND

from .loadtest import LoadtestResult, csv_number

KNEE_METHOD = (
    "Knee: from Locust's once-a-second aggregated p95 (over its last 10 s) of the samples with requests, the baseline is "
    "the lowest p95 of the first half of the run; the knee is the first later sample from which p95 stays at or above "
    "max(2 × baseline, baseline + 50 ms) for 3 consecutive samples."
)


def _title(kind: str) -> str:
    entry = FINDINGS_BY_KIND.get(kind)
    return entry.title if entry is not None else kind


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _run_facts(result: LoadtestResult) -> list[tuple[str, str]]:
    total = result.total
    requests_n = int(csv_number(total.get("Request Count")) or 0)
    failures_n = int(csv_number(total.get("Failure Count")) or 0)
    facts = [
        ("locustfile", result.locustfile),
        ("target", result.host or "(the locustfile's host)"),
        ("sidecar API", result.api),
        ("started (UTC)", result.started_at),
        ("users / spawn rate", f"{result.users} / {result.spawn_rate:g} per s"),
        ("duration", f"{result.duration_s:g} s" + (" (interrupted)" if result.interrupted else "")),
        ("requests / failures", f"{requests_n} / {failures_n}"),
        ("peak throughput", f"{result.peak_rps:.1f} rps"),
    ]
    for label, column in (("median", "Median Response Time"), ("p95", "95%"), ("p99", "99%")):
        value = csv_number(total.get(column))
        if value is not None:
            facts.append((f"{label} latency (whole run)", f"{value:.0f} ms"))
    return facts


def _knee_text(result: LoadtestResult) -> str:
    knee = result.knee
    sat = result.saturated_from_start
    if sat is not None:
        return (
            f"Saturated from the start: throughput held near **{sat.rps:.1f} rps** while users rose from "
            f"{sat.users_from:.0f} to {sat.users_to:.0f} and p95 rose with them ({sat.p95_from_ms:.0f} → {sat.p95_to_ms:.0f} ms): "
            "the target was at its capacity from its first second, so latency shows no knee."
        )
    if knee is None:
        if len(result.samples) < 6:
            return "Too few samples to look for a knee (the run was too short)."
        early = result.early_finding()
        if early is not None:
            t_s, f = early
            return (
                f"No knee in latency, but the sidecar named **{_title(f.get('kind', ''))}** ({f.get('severity')}) "
                f"{t_s:.0f} s into the run: the target was likely saturated from its first second, so latency had no "
                "healthy baseline to climb from."
            )
        return "No knee: p95 latency stayed within its baseline band — the target was not pushed past its capacity."
    return (
        f"Latency started to climb at **{knee.t_s:.0f} s** into the run, with **{knee.users} users** at "
        f"**{knee.rps:.1f} rps**: p95 {knee.p95_ms:.0f} ms against a baseline of {knee.baseline_p95_ms:.0f} ms "
        f"(threshold {knee.threshold_ms:.0f} ms). Peak throughput of the run: {result.peak_rps:.1f} rps."
    )


# --------------------------------------------------------------------------- Markdown


def markdown_report(result: LoadtestResult) -> str:
    out = ["# Load test report", ""]
    out += ["| | |", "|---|---|", *[f"| {k} | {_md(v)} |" for k, v in _run_facts(result)], ""]
    out += ["## Knee point", "", _knee_text(result), "", f"_{KNEE_METHOD}_", ""]
    out += ["## Likely bottleneck", ""]
    if result.findings_error:
        out += [f"The sidecar's findings could not be read at the end: {result.findings_error}", ""]
    if result.findings:
        top = result.findings[0]
        if top.get("severity") not in ABOVE_INFO:
            out += ["No bottleneck above info; the top finding, for reference:", ""]
        out += [
            f"**{_title(top['kind'])}** (`{top['kind']}`) — {_md(top.get('service'))} / `{_md(top.get('target'))}`: "
            f"{top.get('severity')}, score {float(top.get('score', 0)):.2f}, since {top.get('since')}",
            "",
            _md(top.get("summary", "")),
            "",
            f"**Fix:** {_md(top.get('recommendation', ''))}",
            "",
            "| evidence | value |",
            "|---|---|",
            *[f"| {_md(k)} | {_md(v)} |" for k, v in evidence_items(top.get("evidence") or {})],
            "",
            "## All findings of the run",
            "",
            "| # | kind | service | target | severity | score | summary | recommendation |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, f in enumerate(result.findings, start=1):
            out.append(
                f"| {i} | `{f['kind']}` | {_md(f.get('service'))} | `{_md(f.get('target'))}` | {f.get('severity')} | "
                f"{float(f.get('score', 0)):.2f} | {_md(f.get('summary', ''))} | {_md(f.get('recommendation', ''))} |"
            )
        out.append("")
    elif not result.findings_error:
        out += ["The sidecar found no bottleneck during the run.", ""]
    if result.seen:
        out += ["## Findings seen while the load ran", "", "| kind | service | target | first seen | peak score | times on top |", "|---|---|---|---|---|---|"]
        for seen in sorted(result.seen.values(), key=lambda s: (-s.times_on_top, -s.peak_score)):
            out.append(
                f"| `{seen.kind}` | {_md(seen.service)} | `{_md(seen.target)}` | {seen.first_seen_s:.0f} s | {seen.peak_score:.2f} | {seen.times_on_top} |"
            )
        out.append("")
    rows = [row for row in result.per_name if row.get("Name") != "Aggregated"]
    if rows:
        out += ["## Requests (Locust)", "", "| type | name | requests | failures | median ms | p95 ms | p99 ms | rps |", "|---|---|---|---|---|---|---|---|"]
        for row in [*rows, result.total]:
            rps = csv_number(row.get("Requests/s")) or 0.0
            out.append(
                f"| {_md(row.get('Type', ''))} | {_md(row.get('Name', ''))} | {row.get('Request Count', '')} | {row.get('Failure Count', '')} | "
                f"{row.get('Median Response Time', '')} | {row.get('95%', '')} | {row.get('99%', '')} | {rps:.1f} |"
            )
        out.append("")
    if result.failures:
        out += ["## Failures (Locust)", "", "| method | name | error | occurrences |", "|---|---|---|---|"]
        out += [
            f"| {_md(r.get('Method', ''))} | {_md(r.get('Name', ''))} | {_md(r.get('Error', ''))[:200]} | {r.get('Occurrences', '')} |" for r in result.failures
        ]
        out.append("")
    out += ["Locust's raw statistics: `locust_stats.csv`, `locust_stats_history.csv`, `locust_failures.csv`, `locust.log` in this directory.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- HTML


def figures(result: LoadtestResult) -> list[go.Figure]:
    """Throughput + users, latency with the knee, finding scores over time."""
    t = [s.t_s for s in result.samples]
    throughput = make_subplots(specs=[[{"secondary_y": True}]])
    throughput.add_trace(go.Scatter(x=t, y=[s.rps for s in result.samples], name="requests/s", mode="lines"), secondary_y=False)
    throughput.add_trace(go.Scatter(x=t, y=[s.failures_per_s for s in result.samples], name="failures/s", mode="lines"), secondary_y=False)
    throughput.add_trace(go.Scatter(x=t, y=[s.users for s in result.samples], name="users", mode="lines", line={"dash": "dot"}), secondary_y=True)
    throughput.update_layout(title="Throughput", xaxis_title="seconds into the run", height=360, margin={"t": 50, "b": 40})
    throughput.update_yaxes(title_text="requests/s", secondary_y=False)
    throughput.update_yaxes(title_text="users", secondary_y=True)

    latency = go.Figure()
    for label, values in (
        ("p50", [s.p50_ms for s in result.samples]),
        ("p95", [s.p95_ms for s in result.samples]),
        ("p99", [s.p99_ms for s in result.samples]),
    ):
        latency.add_trace(go.Scatter(x=t, y=values, name=label, mode="lines"))
    knee = result.knee
    if knee is not None:
        latency.add_vline(x=knee.t_s, line_dash="dash", line_color="red", annotation_text=f"knee: {knee.users} users, {knee.rps:.1f} rps")
        latency.add_hline(y=knee.threshold_ms, line_dash="dot", line_color="gray", annotation_text="knee threshold")
    latency.update_layout(title="Latency (Locust, last 10 s)", xaxis_title="seconds into the run", yaxis_title="ms", height=360, margin={"t": 50, "b": 40})

    scores = go.Figure()
    series: dict[str, tuple[list[float], list[float]]] = {}
    for t_s, findings in result.timeline:
        best: dict[str, float] = {}
        for f in findings:
            best[f["kind"]] = max(best.get(f["kind"], 0.0), float(f.get("score") or 0.0))
        for kind, score in best.items():
            xs, ys = series.setdefault(kind, ([], []))
            xs.append(t_s)
            ys.append(score)
    for kind, (xs, ys) in sorted(series.items()):
        scores.add_trace(go.Scatter(x=xs, y=ys, name=kind, mode="lines+markers"))
    scores.update_layout(
        title="Sidecar findings over the run (highest score per kind)",
        xaxis_title="seconds into the run",
        yaxis_title="score",
        yaxis_range=[0, 1.05],
        height=360,
    )
    return [throughput, latency, scores]


def _table(headers: list[str], rows: list[list]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def html_report(result: LoadtestResult) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>chokepoint load test report</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}.top{border-left:4px solid #c0392b;padding:0.5em 1em;background:#fdf3f2}.method{color:#666;font-size:90%}</style>",
        "</head><body><h1>Load test report</h1>",
        _table(["", ""], [[k, v] for k, v in _run_facts(result)]),
        "<h2>Knee point</h2>",
        f"<p>{html.escape(_knee_text(result)).replace('**', '')}</p><p class='method'>{html.escape(KNEE_METHOD)}</p>",
    ]
    charts = figures(result)
    for i, fig in enumerate(charts):
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    parts.append("<h2>Likely bottleneck</h2>")
    if result.findings_error:
        parts.append(f"<p>The sidecar's findings could not be read at the end: {html.escape(result.findings_error)}</p>")
    if result.findings:
        top = result.findings[0]
        if top.get("severity") not in ABOVE_INFO:
            parts.append("<p>No bottleneck above info; the top finding, for reference:</p>")
        parts.append(
            f"<div class='top'><p><b>{html.escape(_title(top['kind']))}</b> (<code>{html.escape(top['kind'])}</code>) — "
            f"{html.escape(str(top.get('service')))} / <code>{html.escape(str(top.get('target')))}</code>: {html.escape(str(top.get('severity')))}, "
            f"score {float(top.get('score', 0)):.2f}, since {html.escape(str(top.get('since')))}</p>"
            f"<p>{html.escape(str(top.get('summary', '')))}</p><p><b>Fix:</b> {html.escape(str(top.get('recommendation', '')))}</p>"
            + _table(["evidence", "value"], [[k, v] for k, v in evidence_items(top.get("evidence") or {})])
            + "</div>"
        )
        parts.append("<h2>All findings of the run</h2>")
        parts.append(
            _table(
                ["#", "kind", "service", "target", "severity", "score", "summary", "recommendation"],
                [
                    [
                        i,
                        f["kind"],
                        f.get("service"),
                        f.get("target"),
                        f.get("severity"),
                        f"{float(f.get('score', 0)):.2f}",
                        f.get("summary", ""),
                        f.get("recommendation", ""),
                    ]
                    for i, f in enumerate(result.findings, start=1)
                ],
            )
        )
    elif not result.findings_error:
        parts.append("<p>The sidecar found no bottleneck during the run.</p>")
    if result.seen:
        parts.append("<h2>Findings seen while the load ran</h2>")
        seen = sorted(result.seen.values(), key=lambda s: (-s.times_on_top, -s.peak_score))
        parts.append(
            _table(
                ["kind", "service", "target", "first seen (s)", "peak score", "times on top"],
                [[s.kind, s.service, s.target, f"{s.first_seen_s:.0f}", f"{s.peak_score:.2f}", s.times_on_top] for s in seen],
            )
        )
    rows = [row for row in result.per_name if row.get("Name") != "Aggregated"]
    if rows:
        parts.append("<h2>Requests (Locust)</h2>")
        parts.append(
            _table(
                ["type", "name", "requests", "failures", "median ms", "p95 ms", "p99 ms"],
                [
                    [
                        r.get("Type", ""),
                        r.get("Name", ""),
                        r.get("Request Count", ""),
                        r.get("Failure Count", ""),
                        r.get("Median Response Time", ""),
                        r.get("95%", ""),
                        r.get("99%", ""),
                    ]
                    for r in [*rows, result.total]
                ],
            )
        )
    if result.failures:
        parts.append("<h2>Failures (Locust)</h2>")
        parts.append(
            _table(
                ["method", "name", "error", "occurrences"],
                [[r.get("Method", ""), r.get("Name", ""), r.get("Error", "")[:200], r.get("Occurrences", "")] for r in result.failures],
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(result: LoadtestResult) -> tuple[Path, Path]:
    md_path = result.output_dir / "report.md"
    html_path = result.output_dir / "report.html"
    md_path.write_text(markdown_report(result))
    html_path.write_text(html_report(result))
    return md_path, html_path
