"""The loadtest report from a synthetic result: what it says, escaping, self-contained HTML."""

from __future__ import annotations

from chokepoint.collector.catalog import FINDINGS_BY_KIND
from chokepoint.dashboards.loadtest import FindingSeen, LoadtestResult, Sample
from chokepoint.dashboards.loadtest_report import html_report, markdown_report, write_reports
from tests.collector import test_report as report_test

# the report test's finding, with markup and a table separator in its summary
FINDING = {**report_test.FINDING, "summary": "Requests wait 410 ms (p99) for a DB connection <script>alert(1)</script> | pool 10/10"}


def result(tmp_path, climb: bool = True, findings: list[dict] | None = None) -> LoadtestResult:
    p95 = [40.0] * 10 + ([300.0] * 10 if climb else [41.0] * 10)
    r = LoadtestResult("examples/locustfile.py", "http://127.0.0.1:8000", "http://127.0.0.1:8787", 20, 5.0, 20.0, "2026-11-22T00:00:00+00:00", tmp_path)
    r.samples = [Sample(float(i), min(20, 5 * (i + 1)), 30.0 + i, 0.0, p / 2, p, p * 1.5, 30 * i, 0) for i, p in enumerate(p95)]
    r.per_name = [
        {
            "Type": "GET",
            "Name": "search",
            "Request Count": "300",
            "Failure Count": "0",
            "Median Response Time": "25",
            "95%": "280",
            "99%": "400",
            "Requests/s": "15.0",
        },
        {
            "Type": "",
            "Name": "Aggregated",
            "Request Count": "600",
            "Failure Count": "0",
            "Median Response Time": "20",
            "95%": "250",
            "99%": "390",
            "Requests/s": "30.0",
        },
    ]
    r.findings = [FINDING, {**FINDING, "kind": "slow_query", "target": "SELECT 1", "score": 0.3, "severity": "info"}] if findings is None else findings
    r.timeline = [(2.0, r.findings), (4.0, r.findings[:1])]
    r.seen = {("db_pool_saturation", "shop", "sqlalchemy:postgresql"): FindingSeen("db_pool_saturation", "shop", "sqlalchemy:postgresql", 2.0, 0.87, 2)}
    return r


def test_markdown_names_the_bottleneck_with_evidence_fix_and_the_knee(tmp_path):
    md = markdown_report(result(tmp_path))
    title = FINDINGS_BY_KIND["db_pool_saturation"].title
    assert f"**{title}** (`db_pool_saturation`) — shop / `sqlalchemy:postgresql`: critical, score 0.87" in md
    assert "| wait p99 | 410 ms |" in md and "**Fix:** Raise the pool size" in md
    assert "Latency started to climb at **10 s** into the run, with **20 users** at **40.0 rps**" in md
    assert "\\| pool 10/10" in md  # a | inside a cell does not break the table
    assert "| 2 | `slow_query` |" in md
    assert "| GET | search | 300 | 0 | 25 | 280 | 400 | 15.0 |" in md


def test_markdown_without_knee_or_findings_says_so(tmp_path):
    md = markdown_report(result(tmp_path, climb=False, findings=[]))
    assert "No knee: p95 latency stayed within its baseline band" in md
    assert "The sidecar found no bottleneck during the run." in md


def test_markdown_reports_a_failed_sidecar_read(tmp_path):
    r = result(tmp_path, findings=[])
    r.findings_error = "cannot reach the collector at http://127.0.0.1:8787"
    assert "could not be read at the end: cannot reach the collector" in markdown_report(r)


def test_html_is_self_contained_escaped_and_has_three_charts(tmp_path):
    page = html_report(result(tmp_path))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script src=" not in page and page.count('class="plotly-graph-div"') == 3
    assert page.count("plotly.js v") == 1  # the library inlined once, not per chart
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<td>db_pool_saturation</td>" in page and "knee: 20 users" in page


def test_write_reports_writes_both_files(tmp_path):
    md_path, html_path = write_reports(result(tmp_path))
    assert md_path == tmp_path / "report.md" and html_path == tmp_path / "report.html"
    assert md_path.read_text().startswith("# Load test report") and "Plotly.newPlot" in html_path.read_text()
