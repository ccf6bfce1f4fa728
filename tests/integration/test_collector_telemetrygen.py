"""A non-Python OTLP client: telemetrygen (Go, opentelemetry-collector-contrib) over gRPC and HTTP → collector.

telemetrygen is built by scripts/provision-telemetrygen.sh (``go install`` from the Go
module proxy into ~/.cache/chokepoint/bin, ~70 s the first time, skipped when present);
the test runs the script itself so a fresh machine gets it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from chokepoint.collector import catalog
from tests.integration.collector_probe import metric_samples

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CHOKEPOINT_CACHE", Path.home() / ".cache" / "chokepoint"))


@pytest.fixture(scope="module")
def telemetrygen() -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "provision-telemetrygen.sh")], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"telemetrygen could not be built: {proc.stderr.strip()[-800:]}", pytrace=False)
    binary = CACHE / "bin" / "telemetrygen"
    assert binary.is_file()
    return binary


def run_telemetrygen(binary: Path, *args: str) -> None:
    proc = subprocess.run([str(binary), "traces", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def counter(api: str, metric: catalog.Metric, **labels) -> float:
    return metric_samples(api).get((metric.sample_name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_telemetrygen_traces_are_ingested(collector, telemetrygen, protocol):
    service = f"tg-{protocol}"
    args = ["--traces", "25", "--child-spans", "3", "--service", service, "--otlp-insecure", "--rate", "0", "--status-code", "Error"]
    args += ["--telemetry-attributes", 'http.route="/tg/{id}"']
    if protocol == "grpc":
        args += ["--otlp-endpoint", collector.otlp_grpc]
    else:
        args += ["--otlp-http", "--otlp-endpoint", collector.otlp_http.removeprefix("http://")]
    run_telemetrygen(telemetrygen, *args)

    # 25 traces x (1 root + 3 children), all accepted over the protocol used
    assert counter(collector.api, catalog.INGEST_SPANS, protocol=protocol) == 100
    assert counter(collector.api, catalog.INGEST_REJECTED, protocol=protocol, reason="malformed") == 0
    services = requests.get(f"{collector.api}/api/v1/services", timeout=10).json()["services"]
    assert service in {s["name"] for s in services}
    endpoints = requests.get(f"{collector.api}/api/v1/endpoints", params={"service": service}, timeout=10).json()["endpoints"]
    # telemetrygen's children are SERVER spans: 25 x 3 requests on the route, all errors
    assert [(e["route"], e["count"], e["error_rate"]) for e in endpoints] == [("/tg/{id}", 75, 1.0)]
