"""uncompressed_response: through the real ingest — only responses sent without Content-Encoding count (issue 13 item 6)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis import AnalyzerConfig
from chokepoint.collector.analysis.rules import uncompressed_response
from chokepoint.collector.analysis.snapshot import build_snapshot
from chokepoint.collector.store import Store
from tests.collector.analysis.fixtures import rows
from tests.collector.analysis.otlp import ingest_response_sizes

SVC = "shop"

CASES = [
    (
        "large responses sent uncompressed",
        [("/export", 450_000, 30, False)],
        [
            {
                "service": SVC,
                "target": "/export",
                "explained": 0.2,
                "strength": 1.0,
                "severity": "warning",
                "evidence": {"avg_response_bytes": 450_000, "responses": 30.0, "bytes_per_s": 225_000},
            }
        ],
    ),
    ("large responses sent gzip'd", [("/export", 450_000, 30, True)], []),
    (
        "the uncompressed ones of a route that compresses most",
        [("/export", 900_000, 60, True), ("/export", 150_000, 12, False)],
        [
            {
                "service": SVC,
                "target": "/export",
                "explained": 0.2,
                "strength": 0.6,
                "severity": "info",
                "evidence": {"avg_response_bytes": 150_000, "responses": 12.0, "bytes_per_s": 30_000},
            }
        ],
    ),
    ("small uncompressed responses", [("/health", 200, 300, False)], []),
    ("too few responses to judge", [("/export", 450_000, 2, False)], []),
]


@pytest.mark.parametrize(("name", "sent", "expected"), CASES, ids=[c[0] for c in CASES])
def test_uncompressed_response(name, sent, expected):
    store = Store()
    for route, size, n, compressed in sent:
        ingest_response_sizes(store, SVC, route, size, n, compressed=compressed)
    snap = build_snapshot(store, AnalyzerConfig(window_s=60))
    assert rows(uncompressed_response.rule(snap)) == expected
