"""Reading several collectors as one: merge rules (table tests) and the real REST API of two
collectors plus one that does not answer, through ``chokepoint report`` and the dashboards' client."""

from __future__ import annotations

import json

import pytest

from chokepoint.collector import remote
from chokepoint.collector.cli import main
from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.service import CollectorService
from scripts.devservices import free_port


def test_split_apis():
    assert remote.split_apis(" http://a:1/, http://b:2 ,,http://a:1") == ["http://a:1", "http://b:2"]


def test_findings_ranked_together_one_per_kind_service_target():
    a = [{"kind": "slow_query", "service": "shop", "target": "q1", "score": 0.4}, {"kind": "cpu_saturation", "service": "shop", "target": "p", "score": 0.9}]
    b = [{"kind": "slow_query", "service": "shop", "target": "q1", "score": 0.6}, {"kind": "hot_endpoint", "service": "pay", "target": "/x", "score": 0.5}]
    merged = remote.merge_findings([a, b])
    assert [(f["kind"], f["score"]) for f in merged] == [("cpu_saturation", 0.9), ("slow_query", 0.6), ("hot_endpoint", 0.5)]


def test_rows_of_one_service_combine_others_are_a_union():
    a = [{"service": "shop", "route": "/a", "rps": 30.0, "error_rate": 0.0, "count": 300, "p99_ms": 10.0}]
    b = [
        {"service": "shop", "route": "/a", "rps": 10.0, "error_rate": 0.4, "count": 100, "p99_ms": 99.0},
        {"service": "pay", "route": "/p", "rps": 1.0, "error_rate": 0.0, "count": 10},
    ]
    rows = {(r["service"], r["route"]): r for r in remote.merge_rows("endpoints", [a, b])}
    assert rows[("shop", "/a")]["rps"] == 40.0 and rows[("shop", "/a")]["count"] == 400
    assert rows[("shop", "/a")]["error_rate"] == pytest.approx(0.1)
    assert rows[("shop", "/a")]["p99_ms"] == 10.0  # the busiest collector's percentiles
    assert rows[("pay", "/p")]["count"] == 10
    pools = remote.merge_rows(
        "pools",
        [
            [{"service": "s", "kind": "db", "name": "p", "used": 3}],
            [{"service": "s", "kind": "db", "name": "p", "used": 9}, {"service": "t", "kind": "db", "name": "p", "used": 1}],
        ],
    )
    assert [(p["service"], p["used"]) for p in pools] == [("s", 3), ("t", 1)]


@pytest.fixture
def two_collectors(tmp_path):
    services = []
    for i, name in enumerate(("shop", "billing")):
        svc = CollectorService(CollectorConfig(otlp_grpc_port=0, otlp_http_port=0, api_port=0, persist=False, data_dir=tmp_path / str(i)))
        svc.start()
        svc.store.add_requests(name, "/" + name, [0.01] * 50, errors=5)
        services.append(svc)
    yield services
    for svc in services:
        svc.shutdown()


def test_report_merges_collectors_and_names_the_one_not_answering(two_collectors, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    apis = ",".join([two_collectors[0].api_url, dead, two_collectors[1].api_url])
    assert main(["report", "--api", apis, "--format", "json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["collectors"] == [two_collectors[0].api_url, two_collectors[1].api_url]
    assert [u["api"] for u in doc["unreachable"]] == [dead]
    assert dead in out.err
    assert main(["report", "--api", apis]) == 0
    assert f"Not answering (their services are missing from this report):\n  - {dead}:" in capsys.readouterr().out
    assert main(["report", "--api", f"{dead},{dead}/"]) == 1  # one URL after de-duplication: the single-collector path


def test_dashboard_client_merges_services_and_reports_the_missing_collector(two_collectors):
    from chokepoint.dashboards.client import CollectorUnavailable, MultiApiClient, api_client

    dead = f"http://127.0.0.1:{free_port()}"
    client = api_client(",".join([two_collectors[0].api_url, two_collectors[1].api_url, dead]), timeout_s=5)
    assert isinstance(client, MultiApiClient)
    assert sorted(s["name"] for s in client.services()) == ["billing", "shop"]
    assert {(e["service"], e["count"]) for e in client.endpoints(window_s=60)} == {("shop", 50), ("billing", 50)}
    assert client.health()["status"].startswith(f"not answering: {dead}")
    with pytest.raises(CollectorUnavailable):
        api_client(f"{dead},{dead}0", timeout_s=2).services()
