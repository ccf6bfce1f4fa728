"""docker-compose.yml and docker/ checked without a Docker engine (there is none on the test machines).

Parsed with PyYAML (merge keys included), then: every service has an image or a build
whose context, Dockerfile and target stage exist; every published port is bound to
127.0.0.1; every bind-mounted file or directory exists and every named volume is
declared; ``depends_on`` names real services and ``service_healthy`` only waits for
services that have a health check; the Python services listen on, publish and probe one
port; the agents export to the sidecar service; Kafka runs KRaft from the official
image; the Prometheus config passes the real ``promtool check config`` with the
generated rules; Grafana's provisioning points at the compose services.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chokepoint.collector.cli import build_parser
from chokepoint.collector.config import CollectorConfig

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
SCALE = {"otelcol", "service-topics", "chokepoint-a", "chokepoint-b"}  # profile "scale"
EXPECTED = {"postgres", "kafka", "chokepoint", "shop", "payment", "fulfilment", "prometheus", "alertmanager", "grafana", "locust", *SCALE}
AGENTS = ("shop", "payment", "fulfilment")


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (sources starting with . or /)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_every_expected_service_is_there_and_locust_is_optional():
    assert set(SERVICES) == EXPECTED
    assert SERVICES["locust"]["profiles"] == ["loadtest"]
    assert all(SERVICES[name]["profiles"] == ["scale"] for name in SCALE)
    assert all("profiles" not in s for name, s in SERVICES.items() if name != "locust" and name not in SCALE)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_service_has_an_image_or_a_buildable_build(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    build = service.get("build")
    if build is None:
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), f"{name}: pin an image tag, got {service['image']!r}"
        return
    context = REPO / build["context"]
    dockerfile = context / build["dockerfile"]
    assert context.is_dir() and dockerfile.is_file()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE | re.IGNORECASE)
    assert build["target"] in stages


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_ports_are_bound_to_loopback(name):
    for port in SERVICES[name].get("ports", []):
        assert isinstance(port, str) and re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), f"{name}: {port!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mounted_files_exist_and_named_volumes_are_declared(name):
    service = SERVICES[name]
    for source, _target in bind_mounts(service):
        assert (REPO / source).exists(), f"{name}: {source} does not exist"
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if not source.startswith((".", "/")):
            assert source in COMPOSE["volumes"], f"{name}: volume {source} not declared"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dependencies_exist_and_health_conditions_have_health_checks(name):
    service = SERVICES[name]
    assert "healthcheck" in service, f"{name} has no health check"
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "use the long form with conditions"
    for dependency, spec in depends.items():
        assert dependency in SERVICES
        assert spec["condition"] in ("service_started", "service_healthy", "service_completed_successfully")
        if spec["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dependency]


def test_the_dockerfile_copies_only_what_its_dockerignore_lets_in():
    dockerfile = (REPO / "docker" / "chokepoint.Dockerfile").read_text()
    allowed = {line[1:].rstrip("/") for line in (REPO / "docker" / "chokepoint.Dockerfile.dockerignore").read_text().splitlines() if line.startswith("!")}
    sources = [src.rstrip("/") for src in re.findall(r"^COPY\s+(\S+)\s+\S+$", dockerfile, flags=re.MULTILINE)]
    assert sources
    for source in sources:
        assert (REPO / source).exists() and source in allowed, source


def test_agents_run_under_chokepoint_instrument_and_export_to_the_sidecar():
    sidecar_ports = {p.split(":")[-1] for p in SERVICES["chokepoint"]["ports"]}
    for name in AGENTS:
        service = SERVICES[name]
        assert service["command"][:3] == ["chokepoint-instrument", "python", "-m"]
        assert service["command"][3] == f"shop.{'app' if name == 'shop' else name}"
        env = service["environment"]
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://chokepoint:4318" and "4318" in sidecar_ports
        host, port = re.fullmatch(r"postgresql://\w+:\w+@(\w+):(\d+)/\w+", env["SHOP_DB_URL"]).groups()
        assert host == "postgres" and port == "5432"
        assert env["SHOP_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["SHOP_PAYMENT_URL"] == "http://payment:8001"


@pytest.mark.parametrize("name", [*AGENTS, "locust"])
def test_python_services_listen_publish_and_health_check_the_same_port(name):
    service = SERVICES[name]
    (published,) = service["ports"]
    container_port = published.split(":")[-1]
    command = service["command"]
    listen = command[command.index("--port") + 1] if "--port" in command else command[command.index("--web-port") + 1]
    assert listen == container_port, f"{name} listens on {listen}, publishes {published}"
    probe = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{container_port}/" in probe, probe
    if name in AGENTS:
        assert f"http://127.0.0.1:{container_port}/health'" in probe, probe


def test_sidecar_environment_is_a_valid_collector_config():
    env = {k: str(v) for k, v in SERVICES["chokepoint"]["environment"].items() if not str(v).startswith("${")}
    config = CollectorConfig.from_env(env)
    assert config.bind_host == "0.0.0.0"  # inside the container; published on 127.0.0.1 only
    assert config.kafka_bootstrap == "kafka:9092"
    published = {int(p.split(":")[-1]) for p in SERVICES["chokepoint"]["ports"]}
    assert {config.otlp_grpc_port, config.otlp_http_port, config.api_port, 8050} == published
    # the health check is a real chokepoint command against the sidecar's own API port
    check = SERVICES["chokepoint"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "chokepoint"]
    args = build_parser().parse_args(check[2:])
    assert args.command == "report" and args.api == f"http://127.0.0.1:{config.api_port}"


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in yaml.safe_dump(kafka).lower()
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_prometheus_config_passes_promtool_with_the_generated_rules(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: sudo apt-get install -y prometheus (or scripts/provision.sh)"
    mounts = dict((target, source) for source, target in bind_mounts(SERVICES["prometheus"]))
    config = yaml.safe_load((REPO / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    rules_in_container = [t for t in mounts if t.startswith("/etc/prometheus/rules/")]
    assert rules_in_container and all(Path(t).match(config["rule_files"][0]) for t in rules_in_container)
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["chokepoint:8787"]
    scale_job = next(job for job in config["scrape_configs"] if job["job_name"] == "chokepoint-scale")
    (sd,) = scale_job["dns_sd_configs"]
    assert set(sd["names"]) == {"chokepoint-a", "chokepoint-b"} and sd["port"] == 8787  # the scale profile's collectors
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # the same config as a local file with the rules at their checked-in path, for the real promtool
    config["rule_files"] = [str(REPO / mounts[t]) for t in rules_in_container]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    proc = subprocess.run([promtool, "check", "config", str(local)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_alertmanager_config_routes_to_a_declared_receiver():
    mounts = dict((target, source) for source, target in bind_mounts(SERVICES["alertmanager"]))
    config = yaml.safe_load((REPO / mounts["/etc/alertmanager/alertmanager.yml"]).read_text())
    assert config["route"]["receiver"] in {r["name"] for r in config["receivers"]}


def test_grafana_provisioning_points_at_the_compose_services():
    grafana = SERVICES["grafana"]
    mounts = dict((target, source) for source, target in bind_mounts(grafana))
    assert grafana["environment"]["CHOKEPOINT_PROMETHEUS_URL"] == "http://prometheus:9090"
    datasources = REPO / mounts["/etc/grafana/provisioning/datasources"]
    assert "${CHOKEPOINT_PROMETHEUS_URL" in "".join(p.read_text() for p in datasources.glob("*.yml"))
    providers = yaml.safe_load(next((REPO / mounts["/etc/grafana/provisioning/dashboards"]).glob("*.yml")).read_text())["providers"]
    dashboards_path = providers[0]["options"]["path"]
    assert dashboards_path in mounts and list((REPO / mounts[dashboards_path]).glob("*.json"))


def compose_value(text: str) -> str:
    """A compose string as the container sees it (``$$`` is an escaped ``$``)."""
    return text.replace("$$", "$")


def test_scale_profile_collectors_read_the_service_topics_as_one_group():
    """OpenTelemetry Collector (a topic per service) → one-partition topics → two collectors, one group."""
    configs = [
        CollectorConfig.from_env({k: compose_value(str(v)) for k, v in SERVICES[name]["environment"].items()}) for name in ("chokepoint-a", "chokepoint-b")
    ]
    assert {c.kafka_ingest for c in configs} == {"kafka:9092"} and len({c.kafka_group for c in configs}) == 1
    assert configs[0].kafka_topic_list == configs[1].kafka_topic_list
    (pattern,) = configs[0].kafka_topic_list
    # the topics created with one partition are exactly the demo services the pattern reads
    create = compose_value(SERVICES["service-topics"]["command"][0])
    topics = re.search(r"for t in ([\w ]+);", create).group(1).split()
    assert "--partitions 1" in create
    assert sorted(topics) == sorted(AGENTS) and all(re.fullmatch(pattern[1:] if pattern.startswith("^") else pattern, t) for t in topics)
    api_ports = {p.split(":")[1] for name in ("chokepoint-a", "chokepoint-b") for p in SERVICES[name]["ports"]}
    assert len(api_ports) == 2  # each published on its own host port


def test_scale_profile_otelcol_runs_the_checked_in_config_at_the_built_release():
    otelcol = SERVICES["otelcol"]
    mounts = dict((target, source) for source, target in bind_mounts(otelcol))
    config_file = otelcol["command"][0].split("=", 1)[1]
    assert (REPO / mounts[config_file]).resolve() == (REPO / "scripts" / "otelcol" / "kafka-by-service.yaml").resolve()
    config = yaml.safe_load((REPO / mounts[config_file]).read_text())
    kafka = config["exporters"]["kafka"]
    assert kafka["topic_from_attribute"] == "service.name"
    # the v0.148 exporter names the topic after a request's first resource: nothing batches services before it
    assert all("processors" not in pipeline for pipeline in config["service"]["pipelines"].values())
    assert kafka["traces"]["encoding"] == kafka["metrics"]["encoding"] == "otlp_proto"
    assert otelcol["environment"]["KAFKA_BROKERS"] == "kafka:9092"
    # the image is the contrib release the builder manifest pins (one release everywhere)
    manifest = (REPO / "scripts" / "otelcol" / "builder-config.yaml").read_text()
    contrib = set(re.findall(r"opentelemetry-collector-contrib/\S+ v(\S+)", manifest))
    assert contrib == {otelcol["image"].rsplit(":", 1)[1]}
