"""OTLP fan-in without Kafka, for real: a real OpenTelemetry Collector (built by
scripts/provision-otelcol.sh) whose load-balancing exporter (``routing_key: service``, static
resolver listing three chokepoint collectors' OTLP/gRPC endpoints) sends each service to one of
three ``chokepoint serve`` processes.

Ground truth is what the test sent (OTLP/HTTP to the Collector, requests counted per service).
Asserted:

- every span counted once across the three (sum of ``chokepoint_ingest_spans_total{protocol="grpc"}``
  and of the requests per service equal what was sent), each service on exactly one collector;
- one collector SIGKILLed: the static resolver keeps it on the ring, so its services reach no
  other collector while it is down (measured over 10 s of traffic; the others' services keep
  flowing where they were); the Collector still answers 200 and queues for the dead backend;
- restarted on the same address: what was sent for its services while it was down arrives on
  it, every span once (the exporter's queue and retries);
- killed again, the hostname list edited to the two survivors and the Collector reloaded (SIGHUP): the killed
  collector's services come back on a survivor within 30 s, the survivors' services stay put.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from scripts.devservices import free_port
from tests.integration.collector_probe import wait_for
from tests.integration.otelcol_harness import DEPENDENCY, OTELCOL_CONFIGS, Chokepoint, Process, Traffic, accepts, build_otelcol, findings_of

OTELCOL_CONFIG = OTELCOL_CONFIGS / "loadbalancing-by-service.yaml"
SERVICES = 9
ROUND_S = 0.5
DOWN_S = 10.0


def write_backends(path: Path, collectors: list[Chokepoint]) -> None:
    """The overlay naming the load-balancing exporter's backends (read again on SIGHUP)."""
    hostnames = ", ".join(c.otlp_grpc for c in collectors)
    path.write_text(
        f"exporters:\n  loadbalancing:\n    resolver:\n      static:\n        hostnames: [{hostnames}]\nservice:\n  telemetry:\n    metrics:\n      level: none\n"
    )


def holders(collectors: list[Chokepoint], services: list[str]) -> dict[str, list[str]]:
    """Service -> names of the collectors that have its requests."""
    rows = {c.name: c.requests_by_service() for c in collectors}
    return {svc: [name for name, seen in rows.items() if svc in seen] for svc in services}


def test_three_collectors_behind_a_load_balancing_opentelemetry_collector(tmp_path):
    otelcol = build_otelcol()
    uid = uuid.uuid4().hex[:6]
    services = [f"fanin-{uid}-s{i}" for i in range(SERVICES)]
    collectors = [Chokepoint(name, tmp_path, {}) for name in ("a", "b", "c")]
    overlay = tmp_path / "backends.yaml"
    write_backends(overlay, collectors)
    otlp_http_port = free_port()
    gateway = Process(
        [str(otelcol), "--config", str(OTELCOL_CONFIG), "--config", str(overlay)],
        {"OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp_http_port}", "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}"},
        tmp_path / "otelcol.log",
    )
    try:
        otlp_http = f"http://127.0.0.1:{otlp_http_port}"
        for c in collectors:
            assert wait_for(c.ready, timeout_s=90), c.tail()
        assert wait_for(lambda: accepts(otlp_http), timeout_s=60), gateway.tail()

        traffic = Traffic(otlp_http, services)
        for _ in range(6):
            traffic.round()
            time.sleep(ROUND_S)
        total = traffic.spans()

        # every span counted once across the three, each service on exactly one collector
        assert wait_for(lambda: sum(c.spans("grpc") for c in collectors) >= total, timeout_s=60), (gateway.tail(), [c.tail() for c in collectors])
        time.sleep(2.0)  # nothing more arrives later: no duplicate
        counted = [c.spans("grpc") for c in collectors]
        assert sum(counted) == total, (counted, total)
        owners = holders(collectors, services)
        assert all(len(names) == 1 for names in owners.values()), owners
        assert {svc: sum(c.requests_by_service().get(svc, 0) for c in collectors) for svc in services} == traffic.sent
        expected = {("external_dependency_slow", svc, DEPENDENCY) for svc in services}
        assert wait_for(lambda: expected <= set().union(*(findings_of(c.api) for c in collectors)), timeout_s=30)

        # one collector SIGKILLed: the static resolver keeps it on the ring
        victim = max(collectors, key=lambda c: sum(names == [c.name] for names in owners.values()))
        survivors = [c for c in collectors if c is not victim]
        moved = [s for s, names in owners.items() if names == [victim.name]]
        stayed = [s for s in services if s not in moved]
        assert moved, owners
        victim.kill()
        sent_at_kill = dict(traffic.sent)
        before = {c.name: c.requests_by_service() for c in survivors}
        down_at = time.monotonic()
        while time.monotonic() - down_at < DOWN_S:
            traffic.round()  # the Collector still answers 200: it queues for the dead backend
            time.sleep(ROUND_S)
        time.sleep(2.0)
        while_down = holders(survivors, services)
        assert all(while_down[s] == [] for s in moved), while_down  # nowhere while its collector is down
        assert all(while_down[s] == owners[s] for s in stayed), (while_down, owners)
        grew = {s: sum(c.requests_by_service().get(s, 0) - before[c.name].get(s, 0) for c in survivors) for s in stayed}
        assert all(n > 0 for n in grew.values()), grew  # the others' services kept flowing

        # back on the same address: what the exporter queued and retried for it arrives, once
        victim.restart()
        assert wait_for(victim.ready, timeout_s=90), victim.tail()
        for _ in range(4):
            traffic.round()
            time.sleep(ROUND_S)
        since_kill = 2 * sum(traffic.sent[s] - sent_at_kill[s] for s in moved)
        assert wait_for(lambda: victim.spans("grpc") >= since_kill, timeout_s=90), (victim.spans("grpc"), since_kill, gateway.tail())
        time.sleep(2.0)
        assert victim.spans("grpc") == since_kill, (victim.spans("grpc"), since_kill)
        assert not any(holders(survivors, moved).values())  # and on no other collector
        delivered_after_s = time.monotonic() - down_at
        victim.kill()

        # down again, the list edited to the survivors and the Collector reloaded: the services move
        write_backends(overlay, survivors)
        gateway.proc.send_signal(signal.SIGHUP)
        reloaded_at = time.monotonic()
        back_s = None
        while time.monotonic() - reloaded_at < 45 and back_s is None:
            traffic.round(retry_s=10)  # the OTLP receiver restarts with the pipelines
            now = holders(survivors, services)
            if all(now[s] for s in moved):
                back_s = time.monotonic() - reloaded_at
            time.sleep(ROUND_S)
        assert back_s is not None and back_s <= 30, (back_s, holders(survivors, services), gateway.tail())
        after = holders(survivors, services)
        assert all(len(after[s]) == 1 for s in moved), after  # each moved service on one survivor
        assert all(after[s] == owners[s] for s in stayed), (after, owners)  # the others stayed put
        print(
            f"\nfan-in: {total} spans counted {counted}; victim {victim.name} held {moved}; down {DOWN_S:.0f}s: its "
            f"{since_kill} spans delivered on restart ({delivered_after_s:.1f}s after the kill); "
            f"back after reload in {back_s:.1f}s on {after}"
        )
    finally:
        for c in collectors:
            c.stop()
        gateway.stop()
