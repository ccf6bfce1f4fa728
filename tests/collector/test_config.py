"""Collector config: defaults, CHOKEPOINT_* environment, flags, validation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from chokepoint.collector.config import CollectorConfig, add_arguments


def parse(argv, environ=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return CollectorConfig.from_args(parser.parse_args(argv), environ or {})


def test_defaults_follow_the_contract():
    config = CollectorConfig.from_env({})
    assert (config.bind_host, config.otlp_grpc_port, config.otlp_http_port, config.api_port) == ("127.0.0.1", 4317, 4318, 8787)
    assert config.token is None and config.kafka_bootstrap is None
    assert config.max_body_bytes == 16 * 1024 * 1024
    assert config.dashboard_port == 8050 and CollectorConfig.from_env({"CHOKEPOINT_DASHBOARD_PORT": "8051"}).dashboard_port == 8051
    assert config.resolved_sqlite_path == config.data_dir / "chokepoint.sqlite"


def test_environment_then_flags_win():
    env = {
        "CHOKEPOINT_API_PORT": "9000",
        "CHOKEPOINT_TOKEN": "t",
        "CHOKEPOINT_KAFKA_BOOTSTRAP": "k:9092",
        "CHOKEPOINT_BUCKET_SECONDS": "5",
        "CHOKEPOINT_DATA_DIR": "/tmp/cp",
    }
    config = CollectorConfig.from_env(env)
    assert (config.api_port, config.token, config.kafka_bootstrap, config.bucket_seconds) == (9000, "t", "k:9092", 5.0)
    assert config.resolved_sqlite_path == Path("/tmp/cp/chokepoint.sqlite")
    config = parse(["--api-port", "9100", "--max-body-bytes", "1000", "--sqlite-path", "/tmp/x.sqlite"], env)
    assert (config.api_port, config.max_body_bytes, config.token) == (9100, 1000, "t")
    assert config.resolved_sqlite_path == Path("/tmp/x.sqlite")


def test_sqlite_none_turns_persistence_off():
    assert CollectorConfig.from_env({"CHOKEPOINT_SQLITE_PATH": "none"}).resolved_sqlite_path is None
    assert parse(["--sqlite-path", "none"]).resolved_sqlite_path is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"CHOKEPOINT_API_PORT": "http"}, "CHOKEPOINT_API_PORT='http'"),
        ({"CHOKEPOINT_OTLP_HTTP_PORT": "70000"}, "otlp_http_port must be 0..65535"),
        ({"CHOKEPOINT_BUCKET_SECONDS": "0"}, "bucket_seconds must be > 0"),
        ({"CHOKEPOINT_MAX_INFLIGHT": "0"}, "max_inflight_requests must be >= 1"),
        ({"CHOKEPOINT_ANALYZER_WINDOW_S": "0"}, "analyzer_window_s must be > 0"),
        ({"CHOKEPOINT_DASHBOARD_PORT": "dash"}, "CHOKEPOINT_DASHBOARD_PORT='dash'"),
        ({"CHOKEPOINT_DASHBOARD_PORT": "-1"}, "dashboard_port must be 0..65535"),
    ],
)
def test_bad_values_are_clear_errors(env, fragment):
    with pytest.raises(ValueError) as exc:
        CollectorConfig.from_env(env)
    assert fragment in str(exc.value)


def test_analyzer_windows_from_the_environment_reach_the_analyzer():
    from chokepoint.collector.findings import BottleneckFindings
    from chokepoint.collector.store import Store

    assert (CollectorConfig.from_env({}).analyzer_window_s, CollectorConfig.from_env({}).analyzer_baseline_s) == (60.0, 300.0)
    config = CollectorConfig.from_env({"CHOKEPOINT_ANALYZER_WINDOW_S": "12", "CHOKEPOINT_ANALYZER_BASELINE_S": "120"})
    findings = BottleneckFindings(Store(), config.analyzer_window_s, config.analyzer_baseline_s)
    assert findings.default_window_s == 12.0
    assert findings._analyzer.config.baseline_window_s == 120.0
