"""chokepoint report headlines a likely bottleneck only at warning or above (issue 13 item 12); evidence for people."""

from __future__ import annotations

import pytest

from chokepoint.collector.evidence import evidence_text, format_value
from chokepoint.collector.report import format_findings


def finding(kind: str, severity: str, score: float, **evidence) -> dict:
    return {
        "kind": kind,
        "service": "blog",
        "target": "t",
        "score": score,
        "severity": severity,
        "since": "2026-11-20T10:00:00Z",
        "summary": f"{kind} summary",
        "evidence": evidence,
        "recommendation": "do this",
    }


INFO_ONLY = [finding("cacheable_reads", "info", 0.31, repeated_ratio=0.95), finding("missing_timeout", "info", 0.12)]


def test_an_info_finding_is_no_likely_bottleneck_in_text():
    out = format_findings(INFO_ONLY, "text", 60)
    assert "Likely bottleneck" not in out
    assert out.splitlines()[:4] == [
        "No bottleneck above info in the last 60 s.",
        "",
        "Findings at info:",
        "  1. [info] cacheable_reads blog/t score 0.31: cacheable_reads summary",
    ]


def test_an_info_finding_is_no_likely_bottleneck_in_markdown():
    md = format_findings(INFO_ONLY, "markdown", 60)
    assert "Likely bottleneck" not in md and "No bottleneck above info." in md
    assert "| 1 | cacheable_reads | blog | `t` | info | 0.31 | cacheable_reads summary |" in md


def test_a_warning_is_headlined_with_evidence_for_people():
    out = format_findings(
        [finding("db_pool_saturation", "warning", 0.55, wait_p99_ms=811.04, pool_used=15.0, gc_time_fraction=0.0261, query_p99_ms=0.0)], "text", 60
    )
    assert out.startswith("Likely bottleneck: DB connection pool exhausted — blog / t (warning, score 0.55")
    assert "  evidence: wait p99: 811 ms, pool used: 15, gc time fraction: 2.6%, query p99: 0 ms" in out


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("wait_p99_ms", 522.008, "522 ms"),
        ("query_p99_ms", 4.26, "4.3 ms"),
        ("query_p99_ms", 0.0, "0 ms"),
        ("pool_used", 15.0, "15"),
        ("cpu_demand", 0.953, "0.95"),
        ("rss_bytes", 147_000_000.0, "147 MB"),
        ("avg_response_bytes", 450_000, "450 kB"),
        ("bytes_per_s", 225_000, "225 kB/s"),
        ("hot_route_rps", 40.0, "40/s"),
        ("time_lag_s", 90.0, "90 s"),
        ("rss_growth_mb_per_min", 54.3, "54.3 MB/min"),
        ("share_of_db_time", 0.9, "90%"),
        ("loop_busy", 0.85, "85%"),
        ("retries", 2400.0, "2,400"),
        ("statuses", ["WARN", "STALL"], "WARN, STALL"),
        ("cpu_bound", True, "yes"),
    ],
)
def test_format_value(key, value, text):
    assert format_value(key, value) == text


def test_evidence_text_leaves_out_unknowns():
    assert evidence_text({"accept_backlog": None, "pending": 6.0, "held": False}) == "pending: 6"
