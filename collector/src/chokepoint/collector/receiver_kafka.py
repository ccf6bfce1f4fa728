"""Kafka ingest: OTLP protobuf as the OpenTelemetry Collector's ``kafka`` exporter writes it.

Several chokepoint collectors started with the same ``--kafka-ingest BROKERS`` (and group)
read the topics as one consumer group; each record is one OTLP export request
(``otlp_proto`` encoding: an ``ExportTraceServiceRequest`` / ``ExportMetricsServiceRequest``
/ ``ExportLogsServiceRequest``), fed to the same :class:`~chokepoint.collector.otlp_consumer.OtlpConsumer`
as OTLP/HTTP and gRPC, counted under ``protocol="kafka"``.

Which signal a record holds: its ``otelcol.signal`` header (the exporter's
``signal_header: true``, from v0.165), else its topic: ``otlp_spans`` → traces, ``otlp_metrics`` → metrics,
``otlp_logs`` → logs (the exporter's default topics), else the record itself (:func:`sniff_signal`:
traces or metrics, for exporters without ``signal_header`` writing both to a service's topic;
logs there need the header).  A record that is none of these is counted as
``chokepoint_ingest_rejected_total{protocol="kafka",reason="unknown_signal"}``, one that does
not parse as ``reason="malformed"``; both are skipped (and committed).

``/metrics`` (the receiver is a ``prometheus_client`` collector the service registers):
``chokepoint_kafka_ingest_records_total{topic}``, ``chokepoint_kafka_ingest_partitions{group}`` (held by
this collector) and ``chokepoint_kafka_ingest_uncommitted_records{topic,partition}`` (read, waiting
for their bucket to be persisted).

Configuration (:class:`KafkaIngestConfig`; ``chokepoint serve`` flags and variables in
``chokepoint.collector.config``):

======================  ==================================  ==========================================
field                   variable / flag                     default
======================  ==================================  ==========================================
``brokers``             ``CHOKEPOINT_KAFKA_INGEST``         unset: Kafka ingest off
                        ``--kafka-ingest``
``group_id``            ``CHOKEPOINT_KAFKA_GROUP``          ``chokepoint``
``topics``              ``CHOKEPOINT_KAFKA_TOPICS``         ``otlp_spans,otlp_metrics``; an entry
                        (comma-separated)                   starting with ``^`` is a regex
``session_timeout_s``   ``CHOKEPOINT_KAFKA_SESSION_S``      ``10`` (a dead collector's partitions
                                                            move after this long)
======================  ==================================  ==========================================

One service on one collector: the per-service analysis needs all of a service's data in one
place, and Kafka hands each *partition* to one member.  The ``kafka`` exporter (v0.165) keys
metrics by their resource with ``partition_metrics_by_resource_attributes: true`` but has no
such option for traces; ``topic_from_attribute: service.name``
writes each service to a topic of its own name, and ``topics`` then lists those topics or a
pattern matching them (``^shop-.*``).  Topics of one partition each keep a service whole; the
assignment is ``cooperative-sticky``, which spreads topics over the members and moves only
what must move.  docs/SCALING.md has the exporter's configuration (and why, before v0.165,
nothing may batch services ahead of it: that exporter names the topic after a request's first resource).

Delivery (at-least-once, bounded loss):

- offsets are stored and committed by hand, never automatically;
- a record's offset is committed only once every bucket it was aggregated into is closed and
  written to SQLite: the service calls :meth:`KafkaIngestReceiver.persisted_through` after
  each persistence flush with the time ``T`` below which every bucket is persisted, and the
  offsets of the records whose ingest finished before ``T`` are committed (first written to
  the ``kafka_offsets`` table of the same SQLite file, then to the group);
- a collector killed at any moment has committed nothing it had not persisted: the member
  that gets its partitions re-reads from the last commit (the data of at most the open bucket
  and one maintenance tick, which the killed collector had not yet written);
- when partitions are taken away in a rebalance, the receiver waits (at most one bucket and
  a few seconds) until what it read from them is in a closed, persisted bucket, then commits
  it, so the next owner continues exactly where it stopped;
- after a restart, records below the offset this collector had persisted (``kafka_offsets``)
  but not yet committed are skipped and counted as
  ``chokepoint_ingest_dropped_total{reason="duplicate"}`` (spans + points + log records).
  A member that re-reads another's uncommitted tail cannot know it was counted elsewhere: such
  duplicates are bounded by the records of one maintenance tick (about 1 s).
- a graceful stop commits everything read (the service saves the open bucket on close);
- with persistence off (``CHOKEPOINT_SQLITE_PATH=none``) offsets follow bucket closing.

Usage::

    receiver = KafkaIngestReceiver(KafkaIngestConfig("broker:9092"), consumer, store, sqlite_path)
    receiver.start()                  # returns once the consumer exists; a thread polls
    receiver.persisted_through(t)     # from the service after each persistence flush
    receiver.shutdown()               # stops polling (idempotent)
    receiver.close()                  # after persistence closed: commit all, leave the group
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from google.protobuf.message import DecodeError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from chokepoint.collector import catalog
from chokepoint.collector.otlp_consumer import REASON_MALFORMED, REQUEST_TYPES, IngestFailure, count_log_records

log = logging.getLogger(__name__)

PROTOCOL_KAFKA = "kafka"
REASON_UNKNOWN_SIGNAL = "unknown_signal"
DROP_DUPLICATE = "duplicate"
SIGNAL_HEADER = "otelcol.signal"
DEFAULT_TOPICS = ("otlp_spans", "otlp_metrics")
TOPIC_SIGNALS = {"otlp_spans": "traces", "otlp_metrics": "metrics", "otlp_logs": "logs"}
OFFSETS_SCHEMA = "CREATE TABLE IF NOT EXISTS kafka_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (grp, topic, part))"


@dataclass(frozen=True)
class KafkaIngestConfig:
    """Kafka ingest settings; see the module docstring."""

    brokers: str
    group_id: str = "chokepoint"
    topics: tuple[str, ...] = DEFAULT_TOPICS
    session_timeout_s: float = 10.0
    metadata_refresh_s: float = 5.0  # how soon a new topic matching a pattern is read
    batch_size: int = 500
    revoke_wait_extra_s: float = 5.0  # on top of one bucket, while partitions are taken away
    consumer_overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.brokers:
            raise ValueError("kafka ingest needs brokers")
        if not self.topics:
            raise ValueError("kafka ingest needs at least one topic")
        if self.session_timeout_s <= 0:
            raise ValueError(f"session_timeout_s must be > 0, got {self.session_timeout_s}")

    def consumer_config(self) -> dict:
        session_ms = int(self.session_timeout_s * 1000)
        conf = {
            "bootstrap.servers": self.brokers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(500, session_ms // 5),
            "topic.metadata.refresh.interval.ms": int(self.metadata_refresh_s * 1000),
            "client.id": "chokepoint-collector",
        }
        conf.update(dict(self.consumer_overrides))
        return conf


def signal_of(topic: str, headers) -> str | None:
    """``traces``/``metrics``/``logs`` from the ``otelcol.signal`` header, else from the topic."""
    for key, value in headers or ():
        if key == SIGNAL_HEADER and value is not None:
            name = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return name if name in REQUEST_TYPES else None
    return TOPIC_SIGNALS.get(topic)


def sniff_signal(value: bytes):
    """``(signal, request)`` of an ``otlp_proto`` record with neither header nor default topic, else ``(None, None)``.

    Traces when it parses as a trace request whose spans all have a 16-byte trace id and an 8-byte
    span id; metrics when it parses as a metrics request whose metrics all have a name and data.
    Read as the other kind, a request fails these checks or does not parse (a metric's name is
    read where a span's trace id is, a log record's time where a metric's name is).
    """
    for signal, ok in (("traces", _all_spans_identified), ("metrics", _all_metrics_named)):
        try:
            request = REQUEST_TYPES[signal].FromString(value)
        except DecodeError:
            continue
        if ok(request):
            return signal, request
    return None, None


def _all_spans_identified(request) -> bool:
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return bool(spans) and all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in spans)


def _all_metrics_named(request) -> bool:
    metrics = [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    return bool(metrics) and all(m.name and m.WhichOneof("data") for m in metrics)


def count_items(signal: str, request) -> int:
    """Spans, data points or log records in one decoded request (for the duplicate counter)."""
    if signal == "traces":
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        return count_log_records(request)
    n = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is not None:
                    n += len(getattr(m, kind).data_points)
    return n


class _OffsetsTable:
    """The offsets this collector has persisted, per group/topic/partition (SQLite, or memory)."""

    def __init__(self, path, group_id: str) -> None:
        self.group_id = group_id
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(OFFSETS_SCHEMA)
        self._lock = threading.Lock()

    def get(self, topic: str, partition: int) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT next_offset FROM kafka_offsets WHERE grp=? AND topic=? AND part=?", (self.group_id, topic, partition)).fetchone()
        return row[0] if row else None

    def put(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        rows = [(self.group_id, t, p, o) for (t, p), o in offsets.items()]
        with self._lock:
            self._db.executemany(
                "INSERT INTO kafka_offsets (grp, topic, part, next_offset) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(grp, topic, part) DO UPDATE SET next_offset=MAX(next_offset, excluded.next_offset)",
                rows,
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KafkaIngestReceiver:
    """Consumes OTLP from Kafka into ``consumer`` (an OtlpConsumer); see the module docstring."""

    def __init__(self, config: KafkaIngestConfig, consumer, store, sqlite_path=None, bucket_seconds: float = 10.0) -> None:
        self.config = config
        self.otlp = consumer
        self.store = store
        self.sqlite_path = sqlite_path
        self.bucket_seconds = bucket_seconds
        self._kafka: Consumer | None = None
        self._offsets: _OffsetsTable | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._persisted_s = float("-inf")
        # (topic, partition) -> deque of (ingest finished at, next offset), oldest first
        self._pending: dict[tuple[str, int], deque[tuple[float, int]]] = {}
        self._floor: dict[tuple[str, int], int] = {}  # skip below this (persisted here before a restart)
        self._assigned: set[tuple[str, int]] = set()
        self.records = 0
        self._records_by_topic: dict[str, int] = {}
        self._stats_lock = threading.Lock()
        self.duplicates = 0
        self.commits = 0
        self.rebalances = 0
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._offsets = _OffsetsTable(self.sqlite_path, self.config.group_id)
        self._kafka = Consumer(self.config.consumer_config(), logger=log)
        self._kafka.subscribe(list(self.config.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="chokepoint-kafka-ingest", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop polling (the consumer stays in the group until :meth:`close`); idempotent."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(30)

    def close(self) -> None:
        """After the store is persisted (graceful stop): commit everything read, leave the group."""
        self.shutdown()
        if self._closed or self._kafka is None:
            return
        self._closed = True
        self._commit(lambda t: True, asynchronous=False)
        try:
            self._kafka.close()
        except (KafkaException, RuntimeError):
            log.exception("kafka ingest: closing the consumer failed")
        self._offsets.close()

    # ------------------------------------------------------------------ the service's hook
    def persisted_through(self, t: float) -> None:
        """Every bucket holding data ingested before ``t`` is closed and persisted."""
        with self._cond:
            if t > self._persisted_s:
                self._persisted_s = t
                self._cond.notify_all()

    # ------------------------------------------------------------------ polling
    def _run(self) -> None:
        kafka = self._kafka
        while not self._stop.is_set():
            try:
                messages = kafka.consume(num_messages=self.config.batch_size, timeout=0.25)
            except (KafkaException, RuntimeError):
                log.exception("kafka ingest: consume failed")
                time.sleep(1)
                continue
            for msg in messages:
                self._handle(msg)
            self._commit(lambda t: t < self._persisted_s)

    def _handle(self, msg) -> None:
        err = msg.error()
        if err is not None:
            if err.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                log.warning("kafka ingest: %s", err)
            return
        key = (msg.topic(), msg.partition())
        offset = msg.offset()
        with self._stats_lock:
            self.records += 1
            self._records_by_topic[key[0]] = self._records_by_topic.get(key[0], 0) + 1
        signal, request = signal_of(msg.topic(), msg.headers()), None
        if signal is None and not any(k == SIGNAL_HEADER for k, _v in msg.headers() or ()):
            signal, request = sniff_signal(msg.value() or b"")
        floor = self._floor.get(key)
        if signal is None:
            self.otlp.reject(PROTOCOL_KAFKA, REASON_UNKNOWN_SIGNAL)
        else:
            try:
                if request is None:
                    request = REQUEST_TYPES[signal].FromString(msg.value() or b"")
            except DecodeError:
                self.otlp.reject(PROTOCOL_KAFKA, REASON_MALFORMED)
            else:
                if floor is not None and offset < floor:
                    n = count_items(signal, request)
                    self.duplicates += n
                    self.store.count_dropped(DROP_DUPLICATE, n)
                else:
                    with contextlib.suppress(IngestFailure):  # counted as rejected{reason="internal"}; skipped
                        self.otlp.consume(signal, request, PROTOCOL_KAFKA)
        done = float("-inf") if floor is not None and offset < floor else self.store.clock()
        self._pending.setdefault(key, deque()).append((done, offset + 1))

    def _commit(self, ready, asynchronous: bool = True, only: set | None = None) -> int:
        """Commit, per partition, the newest offset whose ingest time passes ``ready``."""
        offsets: dict[tuple[str, int], int] = {}
        for key, queue in self._pending.items():
            if only is not None and key not in only:
                continue
            while queue and ready(queue[0][0]):
                offsets[key] = queue.popleft()[1]
        if not offsets:
            return 0
        self._offsets.put(offsets)
        try:
            self._kafka.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=asynchronous)
        except KafkaException as exc:
            # e.g. the partitions were just taken away: the next owner re-reads them (at-least-once)
            log.warning("kafka ingest: commit of %d partitions failed: %s", len(offsets), exc)
            return 0
        self.commits += 1
        return len(offsets)

    # ------------------------------------------------------------------ rebalance callbacks (poll thread)
    def _on_assign(self, kafka, partitions) -> None:
        self.rebalances += 1
        try:
            committed = {(tp.topic, tp.partition): tp.offset for tp in kafka.committed(partitions, timeout=10)}
        except KafkaException:
            committed = {}
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._assigned.add(key)
            mine = self._offsets.get(*key)
            have = committed.get(key, -1)
            if mine is not None and mine > max(have, 0):
                self._floor[key] = mine
            else:
                self._floor.pop(key, None)
        log.info("kafka ingest: assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))

    def _on_revoke(self, kafka, partitions) -> None:
        """Partitions move to another member: wait until what was read from them is persisted, commit it."""
        self.rebalances += 1
        keys = {(tp.topic, tp.partition) for tp in partitions}
        newest = max((q[-1][0] for k, q in self._pending.items() if k in keys and q), default=float("-inf"))
        deadline = time.monotonic() + self.bucket_seconds + self.config.revoke_wait_extra_s
        with self._cond:
            while self._persisted_s <= newest and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("kafka ingest: revoked partitions handed over before their last bucket was persisted (re-read by the next owner)")
                    break
                self._cond.wait(left)
        self._commit(lambda t: t < self._persisted_s, asynchronous=False, only=keys)
        self._forget(keys)
        log.info("kafka ingest: revoked %s", sorted(f"{t}[{p}]" for t, p in keys))

    def _on_lost(self, kafka, partitions) -> None:
        """Partitions lost without a handover (session timed out): the next owner re-reads them."""
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._forget(keys)
        log.warning("kafka ingest: lost %s", sorted(f"{t}[{p}]" for t, p in keys))

    def _forget(self, keys: set) -> None:
        for key in keys:
            self._pending.pop(key, None)
            self._floor.pop(key, None)
            self._assigned.discard(key)

    # ------------------------------------------------------------------ introspection
    def assigned(self) -> list[tuple[str, int]]:
        return sorted(self._assigned)

    def collect(self):
        """``prometheus_client`` collector: records read per topic, partitions held, records not committed yet."""
        with self._stats_lock:
            by_topic = dict(self._records_by_topic)
        assigned = list(self._assigned)
        pending = {key: len(queue) for key, queue in list(self._pending.items())}
        records = CounterMetricFamily(catalog.KAFKA_INGEST_RECORDS.name, catalog.KAFKA_INGEST_RECORDS.help, labels=["topic"])
        for topic, n in sorted(by_topic.items()):
            records.add_metric([topic], n)
        partitions = GaugeMetricFamily(catalog.KAFKA_INGEST_PARTITIONS.name, catalog.KAFKA_INGEST_PARTITIONS.help, labels=["group"])
        partitions.add_metric([self.config.group_id], len(assigned))
        uncommitted = GaugeMetricFamily(catalog.KAFKA_INGEST_UNCOMMITTED.name, catalog.KAFKA_INGEST_UNCOMMITTED.help, labels=["topic", "partition"])
        for (topic, partition), n in sorted(pending.items()):
            uncommitted.add_metric([topic, str(partition)], n)
        yield from (records, partitions, uncommitted)

    def stats(self) -> dict:
        return {
            "records": self.records,
            "duplicates": self.duplicates,
            "commits": self.commits,
            "rebalances": self.rebalances,
            "assigned": [f"{t}[{p}]" for t, p in self.assigned()],
        }
