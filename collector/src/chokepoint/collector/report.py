"""``chokepoint report``: the ranked bottleneck findings of a running collector.

Usage::

    chokepoint report                                  # text, last 60 s, http://127.0.0.1:8787
    chokepoint report --api http://host:8787 --window 300 --format markdown
    chokepoint report --format json > findings.json

Reads ``GET /api/v1/bottlenecks?window=S`` (sending ``Authorization: Bearer
$CHOKEPOINT_TOKEN`` when set).  Exit codes: 0 with findings or none, 1 when the
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


class ReportError(RuntimeError):
    """The collector could not be read; the message says why."""


def fetch_findings(api: str, window_s: float, timeout_s: float = 10.0, token: str | None = None) -> list[dict]:
    url = f"{api.rstrip('/')}/api/v1/bottlenecks?{urllib.parse.urlencode({'window': window_s})}"
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
    findings = body.get("findings") if isinstance(body, dict) else None
    if not isinstance(findings, list):
        raise ReportError(f"collector at {api} sent no findings list")
    return findings


def _evidence_text(evidence: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in evidence.items() if v is not None)


def format_text(findings: list[dict], window_s: float) -> str:
    if not findings:
        return f"No bottleneck found in the last {window_s:g} s.\n"
    lines = []
    top = findings[0]
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
    out += [
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
        *[f"| {k} | {v} |" for k, v in (top.get("evidence") or {}).items()],
        "",
        "## All findings",
        "",
        "| # | kind | service | target | severity | score | summary |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(findings, start=1):
        summary = f["summary"].replace("|", "\\|")
        out.append(f"| {i} | {f['kind']} | {f['service']} | `{f['target']}` | {f['severity']} | {f['score']:.2f} | {summary} |")
    return "\n".join([*out, ""])


def format_findings(findings: list[dict], fmt: str, window_s: float) -> str:
    if fmt == "json":
        return json.dumps({"window_s": window_s, "findings": findings}, indent=2) + "\n"
    if fmt == "markdown":
        return format_markdown(findings, window_s)
    return format_text(findings, window_s)


def run_report(api: str, window_s: float, fmt: str) -> int:
    try:
        findings = fetch_findings(api, window_s)
    except ReportError as exc:
        print(f"chokepoint report: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_findings(findings, fmt, window_s))
    return 0
