"""The collector service: wires store, persistence, receivers, API and lag monitor from one config.

Built like an OpenTelemetry Collector component: ``CollectorService(config)`` is a
side-effect-free factory (nothing is opened, bound or started); ``start()`` brings the
parts up in a fixed order and returns as soon as every listener listens; ``shutdown()``
is idempotent, stops them in reverse order and flushes persistence.  If a part fails to
start, the parts already started are stopped again (reverse order) and the error is
raised.

Start order (answerers before askers)::

    1. Store(StoreConfig(bucket_seconds, memory_retention_s, disk_retention_s))
    2. SqlitePersistence(sqlite_path).load_into(store)        (unless persistence is off)
    3. maintenance loop: store.flush_due() + persistence.flush(store) every second and just
       after each bucket boundary,
       the bottleneck analyzer every analyze_interval_s (findings.py)
    4. OTLP/gRPC receiver        (bind_host:otlp_grpc_port)
    5. OTLP/HTTP receiver + REST API + /metrics on one uvicorn loop (otlp_http_port, api_port)
    6. Kafka lag monitor         (only with kafka_bootstrap)
    7. Kafka ingest receiver     (only with kafka_ingest; receiver_kafka.py)

After each maintenance tick's persistence flush, every callback registered with
``on_persisted(callback)`` gets the time below which all buckets are closed and written
(the Kafka ingest commits offsets up to it).  At shutdown the Kafka ingest stops polling
first and commits after persistence has closed (the open bucket saved).

``/metrics`` exposes a dedicated ``prometheus_client.CollectorRegistry`` holding the
core's ``StoreCollector`` and the receivers' own counters (never the process-global
registry, so several services can run in one process, as the tests do).

Usage::

    service = CollectorService(CollectorConfig.from_env())
    service.start()
    print(service.otlp_http_url, service.otlp_grpc_endpoint, service.api_url)
    ...
    service.shutdown()

or ``with CollectorService(config) as service: ...``.  ``chokepoint serve`` runs it in the
foreground (see cli.py).  Configuration: chokepoint.collector.config.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from chokepoint.collector.admission import Admission
from chokepoint.collector.api import create_api_app
from chokepoint.collector.asgi_server import AsgiServers
from chokepoint.collector.auth import BearerAuth
from chokepoint.collector.config import CollectorConfig
from chokepoint.collector.findings import BottleneckFindings
from chokepoint.collector.otlp_consumer import OtlpConsumer, ReceiverStats, ReceiverStatsCollector
from chokepoint.collector.receiver_grpc import OtlpGrpcReceiver
from chokepoint.collector.receiver_http import create_otlp_http_app

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 1.0
BOUNDARY_SLACK_S = 0.05  # the tick after a bucket boundary, so that bucket is closed by then


def _require_kafka_client(what: str) -> None:
    """confluent-kafka is the ``kafka`` extra: say so (a RuntimeError ``chokepoint serve`` reports) when it is missing."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"{what} needs confluent-kafka: pip install 'chokepoint-collector[kafka]'") from exc


class CollectorService:
    def __init__(self, config: CollectorConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config or CollectorConfig()
        self.clock = clock
        self.store = None
        self.persistence = None
        self.ingestor = None
        self.consumer: OtlpConsumer | None = None
        self.stats = ReceiverStats()
        self.registry: CollectorRegistry | None = None
        self.grpc: OtlpGrpcReceiver | None = None
        self.http: AsgiServers | None = None
        self.lag_monitor = None
        self.kafka_ingest = None
        self._persisted_listeners: list[Callable[[float], None]] = []
        self.findings: BottleneckFindings | None = None
        self._next_analysis = 0.0
        self.restored_buckets = 0
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._loop_stop = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------------ addresses
    @property
    def otlp_http_url(self) -> str:
        return f"http://{self._host()}:{self.http.port('otlp-http')}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"{self._host()}:{self.grpc.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self._host()}:{self.http.port('api')}"

    def _host(self) -> str:
        host = self.config.bind_host
        if host in ("0.0.0.0", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> CollectorService:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            self._start_parts()
        except BaseException:
            log.error("collector start failed; stopping the parts already started")
            self._stop_parts()
            with self._lock:
                self._started = False
            raise

    def _start_parts(self) -> None:
        from chokepoint.collector.exposition import StoreCollector
        from chokepoint.collector.ingest import Ingestor
        from chokepoint.collector.store import Store, StoreConfig

        cfg = self.config
        # 1. store
        self.store = Store(
            StoreConfig(bucket_seconds=cfg.bucket_seconds, memory_retention_s=cfg.memory_retention_s, disk_retention_s=cfg.disk_retention_s),
            clock=self.clock,
        )
        # 2. persistence
        path = cfg.resolved_sqlite_path
        if path is not None:
            from chokepoint.collector.persistence import SqlitePersistence

            path.parent.mkdir(parents=True, exist_ok=True)
            self.persistence = SqlitePersistence(path)
            self._stops.append(("persistence", self._close_persistence))
            self.restored_buckets = self.persistence.load_into(self.store)
            log.info("persistence: %s (%d buckets restored)", path, self.restored_buckets)
        # 3. maintenance loop
        self._loop_stop.clear()
        self._loop_thread = threading.Thread(target=self._maintenance_loop, name="chokepoint-maintenance", daemon=True)
        self._loop_thread.start()
        self._stops.append(("maintenance", self._stop_maintenance))
        # pipeline and exposition
        self.ingestor = Ingestor(self.store)
        self.consumer = OtlpConsumer(self.ingestor, self.store, self.stats)
        self.registry = CollectorRegistry(auto_describe=False)
        self.findings = BottleneckFindings(self.store, cfg.analyzer_window_s, cfg.analyzer_baseline_s)
        self.registry.register(StoreCollector(self.store, findings=self.findings.latest))
        self.registry.register(self.findings)  # chokepoint_analyzer_rule_errors_total
        self.registry.register(ReceiverStatsCollector(self.stats))
        auth = BearerAuth(cfg.token)
        admission = Admission(cfg.max_inflight_requests, cfg.max_inflight_bytes)
        # 4. OTLP/gRPC
        self.grpc = OtlpGrpcReceiver(
            self.consumer,
            admission,
            auth,
            host=cfg.bind_host,
            port=cfg.otlp_grpc_port,
            max_message_bytes=cfg.max_body_bytes,
            retry_after_s=cfg.retry_after_s,
            workers=cfg.grpc_workers,
        )
        self.grpc.start()
        self._stops.append(("otlp-grpc", self.grpc.shutdown))
        log.info("OTLP/gRPC listening on %s", self.otlp_grpc_endpoint)
        # 5. OTLP/HTTP + API
        otlp_app = create_otlp_http_app(self.consumer, admission, auth, cfg.max_body_bytes, cfg.retry_after_s, cfg.ingest_threads)
        api_app = create_api_app(self.store, self.registry, auth, findings=self.findings.for_window)
        self.http = AsgiServers()
        self.http.add("otlp-http", otlp_app, cfg.bind_host, cfg.otlp_http_port)
        self.http.add("api", api_app, cfg.bind_host, cfg.api_port)
        self._stops.append(("otlp-http+api", lambda: (self.http.shutdown(), otlp_app.state.receiver.close())))
        self.http.start()
        log.info("OTLP/HTTP listening on %s", self.otlp_http_url)
        log.info("REST API and /metrics listening on %s", self.api_url)
        # 6. Kafka lag monitor
        if cfg.kafka_bootstrap:
            _require_kafka_client("the Kafka lag monitor (kafka_bootstrap)")
            from chokepoint.collector.lag_monitor import KafkaLagMonitor

            self.lag_monitor = KafkaLagMonitor(self.store, cfg.kafka_bootstrap, poll_interval_s=cfg.kafka_poll_interval_s)
            self.lag_monitor.start()
            self._stops.append(("kafka-lag-monitor", self.lag_monitor.shutdown))
            log.info("Kafka lag monitor polling %s every %ss", cfg.kafka_bootstrap, cfg.kafka_poll_interval_s)
        # 7. Kafka ingest
        if cfg.kafka_ingest:
            _require_kafka_client("Kafka ingest (kafka_ingest)")
            from chokepoint.collector.receiver_kafka import KafkaIngestConfig, KafkaIngestReceiver

            kcfg = KafkaIngestConfig(cfg.kafka_ingest, group_id=cfg.kafka_group, topics=cfg.kafka_topic_list, session_timeout_s=cfg.kafka_session_s)
            self.kafka_ingest = KafkaIngestReceiver(kcfg, self.consumer, self.store, sqlite_path=path, bucket_seconds=cfg.bucket_seconds)
            self._stops.insert(0, ("kafka-ingest-commit", self.kafka_ingest.close))  # after persistence closed
            self.kafka_ingest.start()
            self.on_persisted(self.kafka_ingest.persisted_through)
            self.registry.register(self.kafka_ingest)
            self._stops.append(("kafka-ingest", self.kafka_ingest.shutdown))
            log.info("Kafka ingest: group %s reading %s from %s", kcfg.group_id, ",".join(kcfg.topics), kcfg.brokers)

    def on_persisted(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(t)`` after each persistence flush: buckets before ``t`` are closed and written."""
        self._persisted_listeners.append(callback)

    def shutdown(self) -> None:
        """Stop everything in reverse start order and flush persistence; safe to call twice."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._stop_parts()

    def _stop_parts(self) -> None:
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", name)

    # ------------------------------------------------------------------ maintenance
    def _maintenance_loop(self) -> None:
        while not self._loop_stop.wait(self._until_next_tick()):
            self.maintain()

    def _until_next_tick(self) -> float:
        """Every second, and just after each bucket boundary: a closed bucket is written within ~50 ms."""
        size = self.config.bucket_seconds
        return min(MAINTENANCE_INTERVAL_S, size - self.clock() % size + BOUNDARY_SLACK_S)

    def maintain(self) -> None:
        """One maintenance tick: close due buckets, write them to SQLite, analyze when due.  Never raises."""
        try:
            self.store.flush_due()
            through = self.store.closed_through()
            if self.persistence is not None:
                self.persistence.flush(self.store)
            for callback in self._persisted_listeners:
                callback(through)
        except Exception:
            log.exception("collector maintenance tick failed")
        now = time.monotonic()
        if self.findings is not None and now >= self._next_analysis:
            self._next_analysis = now + self.config.analyze_interval_s
            self.findings.refresh()

    def _stop_maintenance(self) -> None:
        self._loop_stop.set()
        thread, self._loop_thread = self._loop_thread, None
        if thread is not None:
            thread.join(10)
        self.maintain()  # last flush after the receivers stopped

    def _close_persistence(self) -> None:
        persistence, self.persistence = self.persistence, None
        if persistence is not None:
            persistence.close(self.store)
