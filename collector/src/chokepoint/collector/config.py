"""Typed configuration of the chokepoint collector service, with documented defaults.

Three layers, later wins: the defaults below, ``CHOKEPOINT_*`` environment variables,
then command-line flags (``chokepoint serve --help``).

==============================  ==============================  ==========================
field                           environment variable            default
==============================  ==============================  ==========================
``bind_host``                   ``CHOKEPOINT_BIND``             ``127.0.0.1``
``otlp_grpc_port``              ``CHOKEPOINT_OTLP_GRPC_PORT``   ``4317``
``otlp_http_port``              ``CHOKEPOINT_OTLP_HTTP_PORT``   ``4318``
``api_port``                    ``CHOKEPOINT_API_PORT``         ``8787``
``dashboard_port``              ``CHOKEPOINT_DASHBOARD_PORT``   ``8050`` (``chokepoint serve``'s embedded dashboard)
``token``                       ``CHOKEPOINT_TOKEN``            unset (no auth)
``data_dir``                    ``CHOKEPOINT_DATA_DIR``         ``~/.local/state/chokepoint``
``sqlite_path``                 ``CHOKEPOINT_SQLITE_PATH``      ``<data_dir>/chokepoint.sqlite``;
                                                                ``none`` keeps memory only
``bucket_seconds``              ``CHOKEPOINT_BUCKET_SECONDS``   ``10``
``memory_retention_s``          ``CHOKEPOINT_MEMORY_RETENTION_S`` ``3600``
``disk_retention_s``            ``CHOKEPOINT_DISK_RETENTION_S`` ``86400``
``kafka_bootstrap``             ``CHOKEPOINT_KAFKA_BOOTSTRAP``  unset (lag monitor off)
``kafka_poll_interval_s``       ``CHOKEPOINT_KAFKA_POLL_S``     ``10``
``kafka_ingest``                ``CHOKEPOINT_KAFKA_INGEST``     unset (Kafka ingest off); brokers to
                                                                consume OTLP from (receiver_kafka.py)
``kafka_group``                 ``CHOKEPOINT_KAFKA_GROUP``      ``chokepoint`` (the ingest consumer group)
``kafka_topics``                ``CHOKEPOINT_KAFKA_TOPICS``     ``otlp_spans,otlp_metrics`` (``^`` = regex)
``kafka_session_s``             ``CHOKEPOINT_KAFKA_SESSION_S``  ``10`` (group session timeout)
``max_body_bytes``              ``CHOKEPOINT_MAX_BODY_BYTES``   ``16777216`` (16 MiB)
``max_inflight_requests``       ``CHOKEPOINT_MAX_INFLIGHT``     ``64``
``max_inflight_bytes``          ``CHOKEPOINT_MAX_INFLIGHT_BYTES`` ``268435456`` (256 MiB)
``retry_after_s``               ``CHOKEPOINT_RETRY_AFTER_S``    ``1``
``grpc_workers``                ``CHOKEPOINT_GRPC_WORKERS``     ``8``
``ingest_threads``              ``CHOKEPOINT_INGEST_THREADS``   ``2``
``analyze_interval_s``          ``CHOKEPOINT_ANALYZE_S``        ``5`` (bottleneck analysis period)
``analyzer_window_s``           ``CHOKEPOINT_ANALYZER_WINDOW_S`` ``60`` (recent window the analyzer judges)
``analyzer_baseline_s``         ``CHOKEPOINT_ANALYZER_BASELINE_S`` ``300`` (baseline before that window)
==============================  ==============================  ==========================

A port of ``0`` binds a free port (tests); the service reports the bound ports.

Usage::

    config = CollectorConfig.from_env()                       # defaults + environment
    parser = argparse.ArgumentParser(); add_arguments(parser)
    config = CollectorConfig.from_args(parser.parse_args())   # + flags
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


def default_data_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "chokepoint"


@dataclass(frozen=True)
class CollectorConfig:
    """Everything the collector service needs; see the module docstring for env vars."""

    bind_host: str = "127.0.0.1"
    otlp_grpc_port: int = 4317
    otlp_http_port: int = 4318
    api_port: int = 8787
    dashboard_port: int = 8050
    token: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    sqlite_path: Path | None = None  # None: <data_dir>/chokepoint.sqlite
    persist: bool = True  # False: memory only (CHOKEPOINT_SQLITE_PATH=none)
    bucket_seconds: float = 10.0
    memory_retention_s: float = 3600.0
    disk_retention_s: float = 86400.0
    kafka_bootstrap: str | None = None
    kafka_poll_interval_s: float = 10.0
    kafka_ingest: str | None = None
    kafka_group: str = "chokepoint"
    kafka_topics: str = "otlp_spans,otlp_metrics"
    kafka_session_s: float = 10.0
    max_body_bytes: int = 16 * MIB
    max_inflight_requests: int = 64
    max_inflight_bytes: int = 256 * MIB
    retry_after_s: int = 1
    grpc_workers: int = 8
    ingest_threads: int = 2
    analyze_interval_s: float = 5.0
    analyzer_window_s: float = 60.0
    analyzer_baseline_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("otlp_grpc_port", "otlp_http_port", "api_port", "dashboard_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0..65535, got {port}")
        for name in (
            "bucket_seconds",
            "memory_retention_s",
            "disk_retention_s",
            "kafka_poll_interval_s",
            "kafka_session_s",
            "analyze_interval_s",
            "analyzer_window_s",
            "analyzer_baseline_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_body_bytes", "max_inflight_requests", "max_inflight_bytes", "grpc_workers", "ingest_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {self.retry_after_s}")

    @property
    def resolved_sqlite_path(self) -> Path | None:
        """The SQLite file, or ``None`` when persistence is off."""
        if not self.persist:
            return None
        return self.sqlite_path if self.sqlite_path is not None else Path(self.data_dir) / "chokepoint.sqlite"

    @property
    def kafka_topic_list(self) -> tuple[str, ...]:
        """``kafka_topics`` split on commas (blanks dropped)."""
        return tuple(t.strip() for t in self.kafka_topics.split(",") if t.strip())

    def replace(self, **changes) -> CollectorConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> CollectorConfig:
        """Defaults, then ``CHOKEPOINT_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict = {}
        for name, (var, convert) in _ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                raise ValueError(f"{var}={raw!r}: {exc}") from None
        sqlite = env.get("CHOKEPOINT_SQLITE_PATH")
        if sqlite:
            if sqlite.lower() == "none":
                values["persist"] = False
            else:
                values["sqlite_path"] = Path(sqlite)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> CollectorConfig:
        """Defaults, environment, then the flags added by :func:`add_arguments`."""
        overrides = {name: getattr(args, name, None) for name in _FLAGS}
        if getattr(args, "sqlite_path", None):
            if str(args.sqlite_path).lower() == "none":
                overrides["persist"] = False
            else:
                overrides["sqlite_path"] = Path(args.sqlite_path)
                overrides["persist"] = True
        return cls.from_env(environ, **overrides)


def _int(raw: str) -> int:
    return int(raw)


def _float(raw: str) -> float:
    return float(raw)


def _str(raw: str) -> str:
    return raw


_ENV = {
    "bind_host": ("CHOKEPOINT_BIND", _str),
    "otlp_grpc_port": ("CHOKEPOINT_OTLP_GRPC_PORT", _int),
    "otlp_http_port": ("CHOKEPOINT_OTLP_HTTP_PORT", _int),
    "api_port": ("CHOKEPOINT_API_PORT", _int),
    "dashboard_port": ("CHOKEPOINT_DASHBOARD_PORT", _int),
    "token": ("CHOKEPOINT_TOKEN", _str),
    "data_dir": ("CHOKEPOINT_DATA_DIR", Path),
    "bucket_seconds": ("CHOKEPOINT_BUCKET_SECONDS", _float),
    "memory_retention_s": ("CHOKEPOINT_MEMORY_RETENTION_S", _float),
    "disk_retention_s": ("CHOKEPOINT_DISK_RETENTION_S", _float),
    "kafka_bootstrap": ("CHOKEPOINT_KAFKA_BOOTSTRAP", _str),
    "kafka_poll_interval_s": ("CHOKEPOINT_KAFKA_POLL_S", _float),
    "kafka_ingest": ("CHOKEPOINT_KAFKA_INGEST", _str),
    "kafka_group": ("CHOKEPOINT_KAFKA_GROUP", _str),
    "kafka_topics": ("CHOKEPOINT_KAFKA_TOPICS", _str),
    "kafka_session_s": ("CHOKEPOINT_KAFKA_SESSION_S", _float),
    "max_body_bytes": ("CHOKEPOINT_MAX_BODY_BYTES", _int),
    "max_inflight_requests": ("CHOKEPOINT_MAX_INFLIGHT", _int),
    "max_inflight_bytes": ("CHOKEPOINT_MAX_INFLIGHT_BYTES", _int),
    "retry_after_s": ("CHOKEPOINT_RETRY_AFTER_S", _int),
    "grpc_workers": ("CHOKEPOINT_GRPC_WORKERS", _int),
    "ingest_threads": ("CHOKEPOINT_INGEST_THREADS", _int),
    "analyze_interval_s": ("CHOKEPOINT_ANALYZE_S", _float),
    "analyzer_window_s": ("CHOKEPOINT_ANALYZER_WINDOW_S", _float),
    "analyzer_baseline_s": ("CHOKEPOINT_ANALYZER_BASELINE_S", _float),
}

# flag name -> (type, help); the dest equals the config field
_FLAGS = {
    "bind_host": (str, "address to bind every listener to [CHOKEPOINT_BIND, 127.0.0.1]"),
    "otlp_grpc_port": (int, "OTLP/gRPC port [CHOKEPOINT_OTLP_GRPC_PORT, 4317]"),
    "otlp_http_port": (int, "OTLP/HTTP port [CHOKEPOINT_OTLP_HTTP_PORT, 4318]"),
    "api_port": (int, "REST API and /metrics port [CHOKEPOINT_API_PORT, 8787]"),
    "token": (str, "bearer token required on ingest and API [CHOKEPOINT_TOKEN]"),
    "data_dir": (Path, "directory of the SQLite file [CHOKEPOINT_DATA_DIR, ~/.local/state/chokepoint]"),
    "bucket_seconds": (float, "aggregation bucket length [CHOKEPOINT_BUCKET_SECONDS, 10]"),
    "memory_retention_s": (float, "how long buckets stay in memory [CHOKEPOINT_MEMORY_RETENTION_S, 3600]"),
    "disk_retention_s": (float, "how long buckets stay on disk [CHOKEPOINT_DISK_RETENTION_S, 86400]"),
    "kafka_bootstrap": (str, "Kafka bootstrap servers for the pull-mode lag monitor [CHOKEPOINT_KAFKA_BOOTSTRAP]"),
    "kafka_poll_interval_s": (float, "lag monitor poll interval [CHOKEPOINT_KAFKA_POLL_S, 10]"),
    "kafka_ingest": (str, "Kafka brokers to consume OTLP from as one consumer group [CHOKEPOINT_KAFKA_INGEST]"),
    "kafka_group": (str, "consumer group of the Kafka ingest [CHOKEPOINT_KAFKA_GROUP, chokepoint]"),
    "kafka_topics": (str, "comma-separated topics of the Kafka ingest, ^regex allowed [CHOKEPOINT_KAFKA_TOPICS, otlp_spans,otlp_metrics]"),
    "kafka_session_s": (float, "Kafka ingest session timeout: a dead collector's partitions move after it [CHOKEPOINT_KAFKA_SESSION_S, 10]"),
    "max_body_bytes": (int, "largest accepted OTLP request body, also after gunzip [CHOKEPOINT_MAX_BODY_BYTES, 16 MiB]"),
    "max_inflight_requests": (int, "OTLP requests in progress before answering 429 [CHOKEPOINT_MAX_INFLIGHT, 64]"),
    "retry_after_s": (int, "Retry-After seconds on 429 [CHOKEPOINT_RETRY_AFTER_S, 1]"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the collector's flags (all default to ``None`` = environment or default)."""
    for name, (kind, help_text) in _FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=help_text)
    parser.add_argument("--sqlite-path", dest="sqlite_path", default=None, help="SQLite file, or 'none' for memory only [CHOKEPOINT_SQLITE_PATH]")
