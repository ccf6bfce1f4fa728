"""``chokepoint report``: the ranked bottleneck findings of a running collector.

Usage::

    chokepoint report                                  # text, last 60 s, http://127.0.0.1:8787
    chokepoint report --api http://host:8787 --window 300 --format markdown
    chokepoint report --format json > findings.json

Reads ``GET /api/v1/bottlenecks?window=S`` and the ``blind_spots`` of ``GET /api/v1/health``
(sending ``Authorization: Bearer $CHOKEPOINT_TOKEN`` when set).  Blind spots (a library in
use whose integration produced nothing, as the agent reports it) are printed first, as a
"Blind spots" block: a signal that is missing is not a cause ruled out.  The top finding is
headlined as "Likely bottleneck" only at ``warning`` or above; otherwise the report says "No
bottleneck above info" and lists the findings.  Evidence is formatted for people
(``evidence.evidence_text``: units, rounded).  Exit codes: 0 with findings or none, 1 when the
collector cannot be reached or answers with an error (one line on stderr says which).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from chokepoint.collector.catalog import FINDINGS_BY_KIND
from chokepoint.collector.evidence import evidence_items, evidence_text

ABOVE_INFO = ("warning", "critical")


class ReportError(RuntimeError):
    """The collector could not be read; the message says why."""


def fetch_findings(api: str, window_s: float, timeout_s: float = 10.0, token: str | None = None) -> list[dict]:
    body = _get_json(api, f"/api/v1/bottlenecks?{urllib.parse.urlencode({'window': window_s})}", timeout_s, token)
    findings = body.get("findings") if isinstance(body, dict) else None
    if not isinstance(findings, list):
        raise ReportError(f"collector at {api} sent no findings list")
    return findings


def fetch_blind_spots(api: str, timeout_s: float = 10.0, token: str | None = None) -> list[dict]:
    """``GET /api/v1/health``'s ``blind_spots``: what the agents report they cannot see ([] from an older collector)."""
    body = _get_json(api, "/api/v1/health", timeout_s, token)
    spots = body.get("blind_spots") if isinstance(body, dict) else None
    return [s for s in spots if isinstance(s, dict)] if isinstance(spots, list) else []


def _get_json(api: str, path: str, timeout_s: float, token: str | None):
    url = f"{api.rstrip('/')}{path}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = token if token is not None else os.environ.get("CHOKEPOINT_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise ReportError(f"collector at {api} answered {exc.code}: {exc.read()[:200].decode(errors='replace')}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReportError(f"cannot reach the collector at {api}: {reason} (is `chokepoint serve` running?)") from exc
    except ValueError as exc:
        raise ReportError(f"collector at {api} sent invalid JSON: {exc}") from exc
    return body


def _evidence_text(evidence: dict) -> str:
    return evidence_text(evidence)


def _is_bottleneck(finding: dict) -> bool:
    """A finding is headlined as the likely bottleneck only at ``warning`` or above."""
    return finding.get("severity") in ABOVE_INFO


def format_text(findings: list[dict], window_s: float) -> str:
    if not findings:
        return f"No bottleneck found in the last {window_s:g} s.\n"
    lines = []
    top = findings[0]
    if not _is_bottleneck(top):
        lines.append(f"No bottleneck above info in the last {window_s:g} s.")
        lines.append("")
        lines.append("Findings at info:")
        for i, f in enumerate(findings, start=1):
            lines.append(f"  {i}. [{f['severity']}] {f['kind']} {f['service']}/{f['target']} score {f['score']:.2f}: {f['summary']}")
        return "\n".join(lines) + "\n"
    title = FINDINGS_BY_KIND.get(top["kind"]).title if top["kind"] in FINDINGS_BY_KIND else top["kind"]
    lines.append(f"Likely bottleneck: {title} — {top['service']} / {top['target']} ({top['severity']}, score {top['score']:.2f}, since {top['since']})")
    lines.append(f"  {top['summary']}")
    lines.append(f"  evidence: {_evidence_text(top.get('evidence') or {})}")
    lines.append(f"  fix: {top['recommendation']}")
    if len(findings) > 1:
        lines.append("")
        lines.append("Other findings:")
        for i, f in enumerate(findings[1:], start=2):
            lines.append(f"  {i}. [{f['severity']}] {f['kind']} {f['service']}/{f['target']} score {f['score']:.2f}: {f['summary']}")
    return "\n".join(lines) + "\n"


def format_markdown(findings: list[dict], window_s: float) -> str:
    out = [f"# Bottleneck report (last {window_s:g} s)", ""]
    if not findings:
        return "\n".join([*out, "No bottleneck found.", ""])
    top = findings[0]
    if not _is_bottleneck(top):
        out += ["No bottleneck above info.", ""]
    else:
        out += _markdown_top(top)
    out += [
        "## All findings",
        "",
        "| # | kind | service | target | severity | score | summary |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(findings, start=1):
        summary = f["summary"].replace("|", "\\|")
        out.append(f"| {i} | {f['kind']} | {f['service']} | `{f['target']}` | {f['severity']} | {f['score']:.2f} | {summary} |")
    return "\n".join([*out, ""])


def _markdown_top(top: dict) -> list[str]:
    return [
        f"## Likely bottleneck: `{top['kind']}` — {top['service']} / `{top['target']}`",
        "",
        f"**{top['severity']}**, score {top['score']:.2f}, since {top['since']}",
        "",
        top["summary"],
        "",
        f"**Fix:** {top['recommendation']}",
        "",
        "| evidence | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in evidence_items(top.get("evidence") or {})],
        "",
    ]


BLIND_SPOTS_HEADING = "Blind spots: the agent reports it cannot see these, so they are not ruled out as the cause"


def format_blind_spots(spots: list[dict], fmt: str) -> str:
    """The "Blind spots" block (empty without any): printed before the findings."""
    if not spots:
        return ""
    rows = [(s.get("service", "?"), f"{s.get('library', '?')} {s.get('version', '')}".strip(), s.get("what", "signals"), s.get("try", "")) for s in spots]
    if fmt == "markdown":
        lines = [f"## {BLIND_SPOTS_HEADING}", "", "| service | library | missing | try |", "|---|---|---|---|"]
        lines += [f"| {svc} | {lib} | {what} | `{try_}` |" for svc, lib, what, try_ in rows]
        return "\n".join([*lines, "", ""])
    lines = [f"{BLIND_SPOTS_HEADING}:"]
    lines += [f"  - {svc}: {lib} in use, no {what}; try {try_}" for svc, lib, what, try_ in rows]
    return "\n".join([*lines, "", ""])


def format_findings(findings: list[dict], fmt: str, window_s: float, blind_spots: list[dict] | None = None) -> str:
    spots = blind_spots or []
    if fmt == "json":
        return json.dumps({"window_s": window_s, "findings": findings, "blind_spots": spots}, indent=2) + "\n"
    if fmt == "markdown":
        return format_blind_spots(spots, fmt) + format_markdown(findings, window_s)
    return format_blind_spots(spots, fmt) + format_text(findings, window_s)


def run_report(api: str, window_s: float, fmt: str) -> int:
    try:
        findings = fetch_findings(api, window_s)
        blind_spots = fetch_blind_spots(api)
    except ReportError as exc:
        print(f"chokepoint report: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_findings(findings, fmt, window_s, blind_spots))
    return 0
