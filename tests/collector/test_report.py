"""``chokepoint report`` formatting and its errors against a live HTTP endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chokepoint.collector.report import BLIND_SPOTS_HEADING, ReportError, fetch_blind_spots, fetch_findings, format_findings, run_report

FINDING = {
    "kind": "db_pool_saturation",
    "service": "shop",
    "target": "sqlalchemy:postgresql",
    "score": 0.87,
    "severity": "critical",
    "since": "2026-11-21T10:00:00Z",
    "summary": "Requests wait 410 ms (p99) for a DB connection; pool 10/10 busy, DB queries themselves take 4 ms",
    "evidence": {"pool_used": 10, "pool_max": 10, "wait_p99_ms": 410, "query_p99_ms": 4},
    "recommendation": "Raise the pool size (DB CPU is low) or shorten connection hold time",
}
SPOT = {"service": "shop", "library": "SQLAlchemy", "version": "2.0.23", "what": "statement spans", "try": "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"}
SECOND = {**FINDING, "kind": "slow_query", "target": "SELECT products", "score": 0.31, "severity": "info", "summary": "a | b"}


@pytest.fixture
def api():
    state = {"status": 200, "body": {"findings": [FINDING, SECOND]}, "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["paths"].append((self.path, self.headers.get("Authorization")))
            payload = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


def test_fetch_sends_window_and_token(api):
    findings = fetch_findings(api["url"], 120, token="s3cret")
    assert findings == [FINDING, SECOND]
    assert api["paths"] == [("/api/v1/bottlenecks?window=120", "Bearer s3cret")]


def test_text_names_the_likely_bottleneck_first():
    text = format_findings([FINDING, SECOND], "text", 60)
    first, *rest = text.splitlines()
    assert first.startswith("Likely bottleneck: DB connection pool exhausted — shop / sqlalchemy:postgresql (critical, score 0.87")
    assert "wait p99: 410 ms" in text
    assert "fix: Raise the pool size" in text
    assert any(line.strip().startswith("2. [info] slow_query") for line in rest)


def test_markdown_escapes_pipes_and_lists_all():
    md = format_findings([FINDING, SECOND], "markdown", 60)
    assert "## Likely bottleneck: `db_pool_saturation`" in md
    assert "| wait p99 | 410 ms |" in md
    assert "a \\| b" in md
    assert md.count("\n| ") >= 2 + 4


def test_json_round_trips():
    assert json.loads(format_findings([FINDING], "json", 30)) == {"window_s": 30, "findings": [FINDING], "blind_spots": []}
    assert json.loads(format_findings([], "json", 30, [SPOT]))["blind_spots"] == [SPOT]


def test_no_findings_is_said_plainly():
    assert format_findings([], "text", 60) == "No bottleneck found in the last 60 s.\n"


def test_unreachable_collector_is_one_clear_line(capsys):
    assert run_report("http://127.0.0.1:9", 60, "text") == 1
    err = capsys.readouterr().err
    assert err.startswith("chokepoint report: cannot reach the collector at http://127.0.0.1:9")
    assert err.count("\n") == 1


def test_error_status_is_reported(api):
    api["status"], api["body"] = 401, {"error": "missing bearer token"}
    with pytest.raises(ReportError, match="answered 401"):
        fetch_findings(api["url"], 60, token="")


def test_blind_spots_are_printed_before_the_findings(api, capsys):
    api["body"] = {"findings": [], "blind_spots": [SPOT]}
    assert run_report(api["url"], 60, "text") == 0
    out = capsys.readouterr().out
    assert out.startswith(BLIND_SPOTS_HEADING)  # read before "No bottleneck found"
    assert "  - shop: SQLAlchemy 2.0.23 in use, no statement spans; try CHOKEPOINT_SQLALCHEMY_SPANS=listeners\n" in out
    assert out.index("No bottleneck found") > out.index("SQLAlchemy")
    assert [path for path, _auth in api["paths"]] == ["/api/v1/bottlenecks?window=60", "/api/v1/health"]


def test_blind_spots_in_markdown():
    md = format_findings([FINDING], "markdown", 60, [SPOT])
    assert md.startswith(f"## {BLIND_SPOTS_HEADING}")
    assert "| shop | SQLAlchemy 2.0.23 | statement spans | `CHOKEPOINT_SQLALCHEMY_SPANS=listeners` |" in md
    assert md.index("Likely bottleneck") > md.index("SQLAlchemy")


def test_no_blind_spots_from_an_older_collector(api):
    api["body"] = {"status": "ok"}
    assert fetch_blind_spots(api["url"]) == []
    assert format_findings([], "text", 60, []) == "No bottleneck found in the last 60 s.\n"
