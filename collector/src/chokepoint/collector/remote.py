"""Reading several collectors as one: the REST answers of N collectors merged.

When the data is sharded by service over N collectors (Kafka ingest as one consumer group, or
an OpenTelemetry Collector routing by service), each collector answers for its own services.
``chokepoint report --api URL,URL,...`` and ``chokepoint dashboard --api URL,URL,...`` ask
them all (in parallel) and merge:

- findings: all collectors' findings ranked together by score; the same (kind, service,
  target) from two collectors (a service that moved during a rebalance) is kept once, at its
  highest score;
- services and endpoints: rows of the same service (endpoint) are combined: rates, counts
  and errors add up, the error rate is weighted by request rate, and latency percentiles
  come from the collector that saw the most requests (a percentile cannot be merged from
  percentiles; they agree when one collector holds the service, which is the design);
- dependencies: combined like endpoints, keyed by (service, kind, target);
- pools, breakers, consumer lag, kept traces, blind spots: the union, one row per key
  (the first collector's, in ``--api`` order).

A collector that does not answer is never dropped silently: :class:`Merged` carries
``unreachable`` (``[(url, reason)]``), the report prints a "Not answering" line for each (and
``"unreachable"`` in JSON), the dashboard shows it in its error banner.

Usage::

    apis = split_apis("http://a:8787,http://b:8787")
    merged = gather(apis, lambda api: fetch(api, "/api/v1/bottlenecks?window=60")["findings"])
    merge_findings(merged.parts)          # one ranked list
    merged.unreachable                    # [("http://b:8787", "connection refused")]
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


def split_apis(text: str | Iterable[str]) -> list[str]:
    """``"URL,URL"`` (or a list of such) → the URLs, stripped, without trailing ``/``, de-duplicated."""
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for url in item.split(","):
            url = url.strip().rstrip("/")
            if url and url not in out:
                out.append(url)
    return out


@dataclass
class Merged:
    """Each answering collector's part (in ``--api`` order) and who did not answer."""

    parts: list = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    unreachable: list[tuple[str, str]] = field(default_factory=list)


def gather(apis: list[str], fetch: Callable[[str], object], errors: tuple[type[BaseException], ...] = (Exception,)) -> Merged:
    """``fetch(api)`` on every collector in parallel; failures (``errors``) become ``unreachable``."""
    merged = Merged()

    def one(api: str):
        try:
            return api, fetch(api), None
        except errors as exc:
            return api, None, str(exc) or type(exc).__name__

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(apis)))) as pool:
        for api, part, error in pool.map(one, apis):
            if error is None:
                merged.parts.append(part)
                merged.answered.append(api)
            else:
                merged.unreachable.append((api, error))
    return merged


def merge_findings(parts: Iterable[list[dict]]) -> list[dict]:
    """All findings ranked by score (best first), one per (kind, service, target)."""
    best: dict[tuple, dict] = {}
    for findings in parts:
        for f in findings:
            key = (f.get("kind"), f.get("service"), f.get("target"))
            if key not in best or float(f.get("score") or 0) > float(best[key].get("score") or 0):
                best[key] = f
    return sorted(best.values(), key=lambda f: -float(f.get("score") or 0))


_SUMMED = ("rps", "count", "rejected", "transitions", "timeouts")


def _combine(rows: list[dict]) -> dict:
    """One row from rows of the same key: sums, rate-weighted error rate, the busiest row's percentiles."""
    if len(rows) == 1:
        return rows[0]
    busiest = max(rows, key=lambda r: float(r.get("count") or r.get("rps") or 0))
    out = dict(busiest)
    for name in _SUMMED:
        values = [r[name] for r in rows if isinstance(r.get(name), (int, float)) and not isinstance(r.get(name), bool)]
        if values:
            out[name] = sum(values)
    rps = [float(r.get("rps") or 0) for r in rows]
    if "error_rate" in busiest and sum(rps) > 0:
        out["error_rate"] = sum(float(r.get("error_rate") or 0) * w for r, w in zip(rows, rps, strict=True)) / sum(rps)
    if all(isinstance(r.get("endpoints"), int) for r in rows):
        out["endpoints"] = max(r["endpoints"] for r in rows)
    return out


KEYS: dict[str, Callable[[dict], tuple]] = {
    "services": lambda r: (r.get("name"),),
    "endpoints": lambda r: (r.get("service"), r.get("route")),
    "dependencies": lambda r: (r.get("service"), r.get("kind"), r.get("target")),
    "pools": lambda r: (r.get("service"), r.get("kind"), r.get("name")),
    "breakers": lambda r: (r.get("service"), r.get("name")),
    "consumer_lag": lambda r: (r.get("group"), r.get("topic"), r.get("partition")),
    "traces": lambda r: (r.get("trace_id"),),
    "blind_spots": lambda r: (r.get("service"), r.get("library"), r.get("what")),
}
COMBINED = {"services", "endpoints", "dependencies"}


def merge_rows(what: str, parts: Iterable[list[dict]]) -> list[dict]:
    """Rows of one REST list (``services``, ``endpoints``, ... see ``KEYS``) from N collectors as one list."""
    key_of = KEYS[what]
    groups: dict[tuple, list[dict]] = {}
    for rows in parts:
        for row in rows:
            groups.setdefault(key_of(row), []).append(row)
    if what in COMBINED:
        return [_combine(rows) for rows in groups.values()]
    return [rows[0] for rows in groups.values()]


# ---------------------------------------------------------------------- chokepoint report --api A,B
def unreachable_lines(unreachable: list[tuple[str, str]], fmt: str) -> str:
    if not unreachable:
        return ""
    head = "Not answering (their services are missing from this report)"
    if fmt == "markdown":
        return "\n".join([f"## {head}", "", *[f"- `{api}`: {why}" for api, why in unreachable], "", ""])
    return "\n".join([f"{head}:", *[f"  - {api}: {why}" for api, why in unreachable], "", ""])


def run_merged_report(apis: list[str], window_s: float, fmt: str) -> int:
    """``chokepoint report --api A,B,...``: exit 0 when at least one collector answered, else 1."""
    from chokepoint.collector import report

    def fetch(api: str):
        findings = report.fetch_findings(api, window_s)
        spots_of = getattr(report, "fetch_blind_spots", None)
        return findings, (spots_of(api) if spots_of else [])

    merged = gather(apis, fetch, errors=(report.ReportError,))
    for api, why in merged.unreachable:
        print(f"chokepoint report: {api} not answering: {why}", file=sys.stderr)
    if not merged.answered:
        return 1
    findings = merge_findings(part[0] for part in merged.parts)
    spots = merge_rows("blind_spots", (part[1] for part in merged.parts))
    extra = [spots] if spots and "blind_spots" in inspect.signature(report.format_findings).parameters else []
    body = report.format_findings(findings, fmt, window_s, *extra)
    if fmt == "json":
        doc = json.loads(body)
        doc.update(blind_spots=spots, collectors=merged.answered, unreachable=[{"api": a, "error": e} for a, e in merged.unreachable])
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(unreachable_lines(merged.unreachable, fmt) + body)
    return 0
