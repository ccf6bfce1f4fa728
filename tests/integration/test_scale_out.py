"""Past one machine, for real: a real OpenTelemetry Collector (built from the Go module proxy by
scripts/provision-otelcol.sh) writes OTLP to a real Kafka broker, a topic per service, and three
``chokepoint serve --kafka-ingest`` processes read it as one consumer group.

Ground truth is what the test sent (OTLP/HTTP batches of requests, each a SERVER span with a
slow outbound HTTP CLIENT child, counted per service) and a fourth, reference chokepoint
collector fed the same data by the same OpenTelemetry Collector over OTLP/gRPC.  Asserted:

- every span counted once across the three (sum of ``chokepoint_ingest_spans_total`` and of
  the requests per service equal what was sent);
- each service on exactly one collector;
- the merged report (``chokepoint report --api a,b,c --format json``) has the reference
  collector's findings (same kinds, services, targets);
- one collector SIGKILLed mid-run: its services (and their findings) come back on another
  within 30 s; what the killed collector had persisted plus what the others read again covers
  everything sent (nothing lost), its on-disk data lags its last answer by at most one bucket,
  and the records counted twice are at most one bucket's worth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient, NewTopic

from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.persistence import SqlitePersistence
from chokepoint.collector.service import CollectorService
from chokepoint.collector.store import Store, StoreConfig
from scripts.devservices import free_port
from tests.integration.collector_probe import wait_for
from tests.integration.otelcol_harness import (
    DEPENDENCY,
    OTELCOL_CONFIGS,
    REQUESTS,
    WINDOW_S,
    Chokepoint,
    Process,
    Traffic,
    accepts,
    build_otelcol,
    findings_of,
)

OTELCOL_CONFIG = OTELCOL_CONFIGS / "kafka-by-service.yaml"
SERVICES = 6
BUCKET_S = 2.0
ROUND_S = 0.5


def report_json(apis: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "chokepoint.collector.cli", "report", "--api", apis, "--format", "json", "--window", "120"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def kinds_services_targets(doc: dict) -> set[tuple[str, str, str]]:
    return {(f["kind"], f["service"], f["target"]) for f in doc["findings"]}


def create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]).values():
        future.result(30)


def group_assignment(bootstrap: str, group: str) -> dict[str, set[str]]:
    """Member id -> topics assigned (empty while the group rebalances)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        desc = admin.describe_consumer_groups([group])[group].result(10)
    except Exception:
        return {}
    if desc.state != ConsumerGroupState.STABLE:
        return {}
    return {m.member_id: {tp.topic for tp in m.assignment.topic_partitions} for m in desc.members}


def balanced(assignment: dict[str, set[str]], topics: list[str], members: int) -> bool:
    """``members`` members, each with its share of the topics, all topics assigned once."""
    sizes = [len(t) for t in assignment.values()]
    return len(assignment) == members and sum(sizes) == len(topics) and set().union(*assignment.values()) == set(topics) and max(sizes) - min(sizes) <= 1


def test_three_collectors_one_group_behind_a_real_opentelemetry_collector(kafka, tmp_path):
    otelcol = build_otelcol()
    uid = uuid.uuid4().hex[:6]
    services = [f"scale-{uid}-s{i}" for i in range(SERVICES)]
    group = f"chokepoint-{uid}"
    create_topics(kafka.bootstrap, services)

    reference = CollectorService(CollectorConfig(otlp_grpc_port=0, otlp_http_port=0, api_port=0, persist=False, bucket_seconds=BUCKET_S, analyze_interval_s=1))
    reference.start()
    otlp_http_port, otlp_grpc_port = free_port(), free_port()
    overlay = tmp_path / "reference-overlay.yaml"
    overlay.write_text(
        # the same data also to one reference collector (the merged report must equal its report)
        "exporters:\n"
        f"  otlp/reference:\n    endpoint: {reference.otlp_grpc_endpoint}\n    tls:\n      insecure: true\n"
        "service:\n  telemetry:\n    metrics:\n      level: none\n"
        "  pipelines:\n"
        "    traces:\n      receivers: [otlp]\n      exporters: [kafka, otlp/reference]\n"
        "    metrics:\n      receivers: [otlp]\n      exporters: [kafka, otlp/reference]\n"
    )
    gateway = Process(
        [str(otelcol), "--config", str(OTELCOL_CONFIG), "--config", str(overlay)],
        {
            "KAFKA_BROKERS": kafka.bootstrap,
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp_http_port}",
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{otlp_grpc_port}",
        },
        tmp_path / "otelcol.log",
    )
    kafka_env = {
        "CHOKEPOINT_KAFKA_INGEST": kafka.bootstrap,
        "CHOKEPOINT_KAFKA_GROUP": group,
        "CHOKEPOINT_KAFKA_TOPICS": f"^scale-{uid}-.*",
        "CHOKEPOINT_KAFKA_SESSION_S": "6",
    }
    collectors = [Chokepoint(name, tmp_path, kafka_env, BUCKET_S) for name in ("a", "b", "c")]
    try:
        otlp_http = f"http://127.0.0.1:{otlp_http_port}"
        assert wait_for(lambda: accepts(otlp_http), timeout_s=60), gateway.tail()
        for c in collectors:
            assert wait_for(c.ready, timeout_s=90), c.tail()
        # the group settled: three members, every service's topic assigned
        settled = wait_for(lambda: balanced(group_assignment(kafka.bootstrap, group), services, 3), timeout_s=60)
        assert settled, group_assignment(kafka.bootstrap, group)

        traffic = Traffic(otlp_http, services)
        for _ in range(8):
            traffic.round()
            time.sleep(ROUND_S)
        total = traffic.spans()

        # every span counted once across the three
        assert wait_for(lambda: sum(c.spans("kafka") for c in collectors) >= total, timeout_s=60), [c.tail() for c in collectors]
        time.sleep(2 * BUCKET_S)  # nothing more arrives later: no duplicate
        counted = [c.spans("kafka") for c in collectors]
        assert sum(counted) == total, (counted, total)
        by_collector = [c.requests_by_service() for c in collectors]
        owners = {svc: [c.name for c, rows in zip(collectors, by_collector, strict=True) if svc in rows] for svc in services}
        assert all(len(names) == 1 for names in owners.values()), (owners, by_collector, counted)  # each service on exactly one collector
        assert {svc: sum(rows.get(svc, 0) for rows in by_collector) for svc in services} == traffic.sent

        # the merged report equals the reference collector's (same kinds, services, targets)
        expected = {("external_dependency_slow", svc, DEPENDENCY) for svc in services}
        assert wait_for(lambda: expected <= findings_of(reference.api_url), timeout_s=30), findings_of(reference.api_url)
        assert wait_for(lambda: expected <= set().union(*(findings_of(c.api) for c in collectors)), timeout_s=30)
        merged = report_json(",".join(c.api for c in collectors))
        single = report_json(reference.api_url)
        assert kinds_services_targets(merged) == kinds_services_targets(single)
        assert merged["unreachable"] == [] and len(merged["collectors"]) == 3

        # one collector SIGKILLed mid-run
        victim = max(collectors, key=lambda c: len([s for s, names in owners.items() if names == [c.name]]))
        survivors = [c for c in collectors if c is not victim]
        moved = [s for s, names in owners.items() if names == [victim.name]]
        assert moved, owners
        for _ in range(5):  # mid-run: traffic flowing, the victim's open bucket filling
            traffic.round()
            time.sleep(ROUND_S)
        before_kill = victim.requests_by_service()
        victim.kill()
        killed_at = time.monotonic()
        failover_s = None
        findings_back_s = None
        while time.monotonic() - killed_at < 45 and (failover_s is None or findings_back_s is None):
            traffic.round()
            seen = set().union(*(c.requests_by_service() for c in survivors))
            if failover_s is None and set(moved) <= seen:
                failover_s = time.monotonic() - killed_at
            if findings_back_s is None and {("external_dependency_slow", s, DEPENDENCY) for s in moved} <= set().union(
                *(findings_of(c.api) for c in survivors)
            ):
                findings_back_s = time.monotonic() - killed_at
            time.sleep(ROUND_S)
        assert failover_s is not None and failover_s <= 30, (failover_s, [c.tail() for c in survivors])
        assert findings_back_s is not None and findings_back_s <= 30, findings_back_s
        for _ in range(3):
            traffic.round()
            time.sleep(ROUND_S)

        # what the killed collector had on disk + what the others read again covers everything sent
        persisted_store = Store(StoreConfig(bucket_seconds=BUCKET_S, memory_retention_s=3600))
        SqlitePersistence(victim.sqlite).load_into(persisted_store)
        persisted = {}
        for row in persisted_store.endpoints(window_s=WINDOW_S):
            persisted[row["service"]] = persisted.get(row["service"], 0) + int(row["count"])

        def covered():
            now = [c.requests_by_service() for c in survivors]
            return {svc: persisted.get(svc, 0) + sum(rows.get(svc, 0) for rows in now) for svc in services}

        assert wait_for(lambda: all(covered()[s] >= traffic.sent[s] for s in services), timeout_s=60), (covered(), traffic.sent)
        time.sleep(2 * BUCKET_S)
        final = covered()
        # one bucket's worth of one service: the nominal rate, or the fullest bucket the victim wrote
        # (a collector catching up on a busy host reads several rounds into one bucket)
        fullest = max((sum(a.sketch.count for (svc, _r), a in b.routes.items() if svc in moved) for b in persisted_store.buckets(WINDOW_S)), default=0)
        per_bucket = max(int(BUCKET_S / ROUND_S) * REQUESTS, fullest // len(moved))
        for svc in services:
            duplicates = final[svc] - traffic.sent[svc]
            assert 0 <= duplicates <= per_bucket + REQUESTS, (svc, final[svc], traffic.sent[svc])
        for svc in moved:
            lost_from_memory = before_kill.get(svc, 0) - persisted.get(svc, 0)
            assert lost_from_memory <= per_bucket + REQUESTS, (svc, before_kill, persisted)  # at most one bucket (+ the round in flight)

        after = report_json(",".join(c.api for c in collectors))
        assert [u["api"] for u in after["unreachable"]] == [victim.api]
        assert {("external_dependency_slow", s, DEPENDENCY) for s in services} <= kinds_services_targets(after)
        print(
            f"\nscale-out: sent {total} spans in phase 1, counted {counted}; victim {victim.name} held {moved}; "
            f"failover {failover_s:.1f}s, findings back {findings_back_s:.1f}s; victim lost from memory "
            f"{ {s: before_kill.get(s, 0) - persisted.get(s, 0) for s in moved} } (one bucket = {per_bucket}); "
            f"duplicates { {s: final[s] - traffic.sent[s] for s in services} }"
        )
    finally:
        for c in collectors:
            c.stop()
        gateway.stop()
        reference.shutdown()
