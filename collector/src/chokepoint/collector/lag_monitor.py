"""Pull-mode Kafka consumer-lag monitor: reads committed offsets from the brokers, no app changes.

Every ``poll_interval_s`` seconds it asks the cluster (confluent-kafka ``AdminClient``):

1. ``list_consumer_groups`` — every consumer group (optionally filtered by ``groups``);
2. ``list_consumer_group_offsets`` per group — its committed offset per topic/partition
   (partitions without a commit are skipped);
3. ``list_offsets(OffsetSpec.latest())`` — the log-end offset of each of those partitions;

and feeds each partition to ``store.record_consumer_offsets(group, topic, partition,
committed, log_end, timestamp_s, time_lag_s, source="pull")``.  The store derives the
offset lag and the status (OK/WARN/STALL/STOP/ERR).

Time lag: the monitor keeps, per topic/partition, a bounded history of
``(poll time, log-end offset)`` (``history_len`` samples, default 360 = 1 h at 10 s) and
estimates when the log end passed the committed offset by interpolating in that history
(``chokepoint.collector.lag.time_lag_s``); time lag = now − that moment.  Its accuracy is
about one poll interval; the first poll of a partition has no history and gives ``0`` only
when the consumer is caught up (``None`` otherwise).

Configuration: ``CHOKEPOINT_KAFKA_BOOTSTRAP`` / ``--kafka-bootstrap`` turns it on;
``CHOKEPOINT_KAFKA_POLL_S`` / ``--kafka-poll-interval-s`` (default 10 s).

Usage::

    monitor = KafkaLagMonitor(store, "127.0.0.1:9092", poll_interval_s=10)
    monitor.poll_once()     # one round, returns the number of partitions recorded
    monitor.start()         # background thread; monitor.shutdown() stops it (idempotent)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from chokepoint.collector.lag import time_lag_s

log = logging.getLogger(__name__)

SOURCE_PULL = "pull"


class KafkaLagMonitor:
    def __init__(
        self,
        store,
        bootstrap_servers: str,
        poll_interval_s: float = 10.0,
        history_len: int = 360,
        request_timeout_s: float = 10.0,
        groups: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
        admin_config: dict | None = None,
    ) -> None:
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.poll_interval_s = poll_interval_s
        self.history_len = history_len
        self.request_timeout_s = request_timeout_s
        self.groups = set(groups) if groups else None
        self.clock = clock
        self._admin_config = {"bootstrap.servers": bootstrap_servers, "client.id": "chokepoint-lag-monitor", **(admin_config or {})}
        self._admin: AdminClient | None = None
        self._history: dict[tuple[str, int], deque[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.errors = 0
        self.last_error = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._admin = AdminClient(self._admin_config)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="chokepoint-kafka-lag", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.request_timeout_s * 3 + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("Kafka lag poll of %s failed: %s", self.bootstrap_servers, self.last_error)
            self._stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))

    # ------------------------------------------------------------------ one round
    def poll_once(self) -> int:
        """Poll the cluster once and record every committed partition; returns how many."""
        if self._admin is None:
            self._admin = AdminClient(self._admin_config)
        admin = self._admin
        timeout = self.request_timeout_s
        listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout + 1)
        group_ids = sorted(g.group_id for g in listing.valid if self.groups is None or g.group_id in self.groups)
        committed: dict[str, list[tuple[str, int, int]]] = {}
        for group_id in group_ids:  # librdkafka takes one group per request
            futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout)
            try:
                result = futures[group_id].result(timeout + 1)
            except KafkaException as exc:
                self.errors += 1
                self.last_error = f"offsets of group {group_id}: {exc}"
                log.warning("Kafka lag: %s", self.last_error)
                continue
            committed[group_id] = [(tp.topic, tp.partition, tp.offset) for tp in result.topic_partitions or [] if tp.offset >= 0 and not tp.error]
        partitions = sorted({(topic, partition) for rows in committed.values() for topic, partition, _ in rows})
        if not partitions:
            self.polls += 1
            return 0
        futures = admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}, request_timeout=timeout)
        now = self.clock()
        log_end: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                log_end[(tp.topic, tp.partition)] = future.result(timeout + 1).offset
            except KafkaException as exc:
                self.errors += 1
                self.last_error = f"log-end offset of {tp.topic}/{tp.partition}: {exc}"
                log.warning("Kafka lag: %s", self.last_error)
        for key, end in log_end.items():
            history = self._history.setdefault(key, deque(maxlen=self.history_len))
            if history and history[-1][0] >= now:
                continue
            history.append((now, end))
        recorded = 0
        for group_id, rows in committed.items():
            for topic, partition, offset in rows:
                end = log_end.get((topic, partition))
                if end is None:
                    continue
                lag_s = time_lag_s(offset, list(self._history[(topic, partition)]), now)
                self.store.record_consumer_offsets(group_id, topic, partition, offset, end, now, time_lag_s=lag_s, source=SOURCE_PULL)
                recorded += 1
        self.polls += 1
        return recorded

    def history(self, topic: str, partition: int) -> list[tuple[float, int]]:
        """The log-end history of one partition, oldest first (for tests and debugging)."""
        return list(self._history.get((topic, partition), ()))
