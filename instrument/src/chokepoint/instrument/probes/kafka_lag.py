"""Kafka consumer-lag probe (``confluent_kafka``) for confluent-kafka ``Consumer``.

Per consumer group / topic / partition (attributes ``messaging.consumer.group.name``,
``messaging.destination.name``, ``messaging.destination.partition.id``,
``messaging.system=kafka``):

=============================================  =============================================
``chokepoint.kafka.consumer.lag``              gauge, messages: high watermark − position
                                               (next offset the app will process; the
                                               committed offset until it has processed one)
``chokepoint.kafka.consumer.time_lag``         gauge, s: while behind, now − timestamp of the
                                               last processed record (grows when the consumer
                                               stalls); when caught up, the lag measured when
                                               that record was processed
``chokepoint.kafka.consumer.high_watermark``   gauge
``chokepoint.kafka.consumer.committed_offset`` gauge (as of the last refresh)
=============================================  =============================================

How: ``confluent_kafka.Consumer`` is replaced by a subclass whose ``poll()`` /
``consume()`` note the offset and timestamp of each returned record (a few attribute
reads per message, no I/O).  Broker queries happen only at metric collection and at
most every ``CHOKEPOINT_KAFKA_LAG_REFRESH_S`` seconds (default 5) per consumer: one
``committed()`` for the assignment and one ``get_watermark_offsets()`` per assigned
partition, so lag keeps growing while the consumer is paused or stuck.  Between
refreshes the locally cached high watermark (updated by every fetch) is used.

Only consumers created after install are tracked (code that did
``from confluent_kafka import Consumer`` earlier keeps the original class), and
``DeserializingConsumer`` is not covered.  Install after the OpenTelemetry
confluent-kafka instrumentor, which also replaces the class: the probe subclasses
whatever ``confluent_kafka.Consumer`` is at install time.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from opentelemetry.metrics import Observation

from chokepoint.instrument import signals
from chokepoint.instrument.probes.patching import BaseProbe, ProbeUnavailable, report_error

_QUERY_TIMEOUT_S = 2.0


class _Partition:
    __slots__ = ("committed", "high_watermark", "last_ts", "position", "processed_lag_s")

    def __init__(self) -> None:
        self.position = -1  # next offset to process; -1 unknown
        self.committed = -1
        self.high_watermark = -1
        self.last_ts: float | None = None  # timestamp (s) of the last processed record
        self.processed_lag_s: float | None = None  # now − timestamp when it was processed


class _ConsumerState:
    def __init__(self, group: str) -> None:
        self.group = group
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self.refreshed_at = float("-inf")
        self.lock = threading.Lock()

    def partition(self, topic: str, partition: int) -> _Partition:
        p = self.partitions.get((topic, partition))
        if p is None:
            p = self.partitions.setdefault((topic, partition), _Partition())
        return p


class KafkaLagProbe(BaseProbe):
    name = "confluent_kafka"

    def __init__(self, meter, *, refresh_interval_s: float | None = None) -> None:
        try:
            import confluent_kafka
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs confluent-kafka: {e}") from e
        super().__init__(meter)
        if refresh_interval_s is None:
            refresh_interval_s = float(os.environ.get("CHOKEPOINT_KAFKA_LAG_REFRESH_S", "5"))
        self.refresh_interval_s = refresh_interval_s
        self.consumers: weakref.WeakKeyDictionary[Any, _ConsumerState] = weakref.WeakKeyDictionary()
        self._kafka = confluent_kafka
        self._no_timestamp = confluent_kafka.TIMESTAMP_NOT_AVAILABLE
        self.observe(signals.KAFKA_CONSUMER_LAG, "{message}", "High watermark minus consumer position", self._lags)
        self.observe(signals.KAFKA_CONSUMER_TIME_LAG, "s", "How far behind in time the consumer is", self._time_lags)
        self.observe(signals.KAFKA_CONSUMER_HIGH_WATERMARK, "{offset}", "Partition high watermark", self._high_watermarks)
        self.observe(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, "{offset}", "Committed offset of the group", self._committed)
        self.consumer_class = self._make_consumer_class(confluent_kafka.Consumer)
        self.patch(confluent_kafka, "Consumer", lambda original: self.consumer_class)

    def _make_consumer_class(self, base: type) -> type:
        probe = self

        class LagTrackingConsumer(base):
            """``confluent_kafka.Consumer`` that reports consumer lag to chokepoint."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if probe.active:
                    probe.track(self, args, kwargs)

            def poll(self, *args, **kwargs):
                msg = super().poll(*args, **kwargs)
                if msg is not None and probe.active:
                    probe.seen(self, (msg,))
                return msg

            def consume(self, *args, **kwargs):
                msgs = super().consume(*args, **kwargs)
                if msgs and probe.active:
                    probe.seen(self, msgs)
                return msgs

            def close(self, *args, **kwargs):
                probe.consumers.pop(self, None)
                return super().close(*args, **kwargs)

        LagTrackingConsumer.__name__ = LagTrackingConsumer.__qualname__ = "Consumer"
        LagTrackingConsumer.__module__ = base.__module__
        return LagTrackingConsumer

    # ------------------------------------------------------------------ hot path
    def track(self, consumer, args, kwargs) -> None:
        try:
            conf = args[0] if args and isinstance(args[0], dict) else kwargs
            self.consumers[consumer] = _ConsumerState(str(conf.get("group.id", "")))
        except Exception:
            report_error("confluent_kafka.track")

    def seen(self, consumer, msgs) -> None:
        try:
            st = self.consumers.get(consumer)
            if st is None:
                return
            now = time.time()
            for msg in msgs:
                if msg.error() is not None:
                    continue
                p = st.partition(msg.topic(), msg.partition())
                p.position = msg.offset() + 1
                ts_type, ts_ms = msg.timestamp()
                if ts_type != self._no_timestamp and ts_ms >= 0:
                    p.last_ts = ts_ms / 1000.0
                    p.processed_lag_s = max(0.0, now - p.last_ts)
        except Exception:
            report_error("confluent_kafka.seen")

    # ------------------------------------------------------------------ collection
    def refresh(self, consumer, st: _ConsumerState) -> None:
        """Bring high watermarks (and, every refresh interval, broker state) up to date."""
        TopicPartition = self._kafka.TopicPartition
        with st.lock:
            due = time.monotonic() - st.refreshed_at >= self.refresh_interval_s
            try:
                if due:
                    st.refreshed_at = time.monotonic()
                    assignment = consumer.assignment()
                    for tp in assignment:
                        st.partition(tp.topic, tp.partition)
                    if assignment:
                        for tp in consumer.committed(assignment, timeout=_QUERY_TIMEOUT_S):
                            if tp.error is None and tp.offset >= 0:
                                p = st.partition(tp.topic, tp.partition)
                                p.committed = tp.offset
                for (topic, partition), p in list(st.partitions.items()):
                    tp = TopicPartition(topic, partition)
                    if due:
                        _, high = consumer.get_watermark_offsets(tp, timeout=_QUERY_TIMEOUT_S, cached=False)
                    else:
                        _, high = consumer.get_watermark_offsets(tp, cached=True)
                    if high is not None and high >= 0:
                        p.high_watermark = max(p.high_watermark, high) if not due else high
            except RuntimeError:  # consumer closed meanwhile
                self.consumers.pop(consumer, None)
            except self._kafka.KafkaException:
                report_error("confluent_kafka.refresh")

    def _rows(self):
        """``(attributes, partition state)`` for every tracked partition, refreshed."""
        for consumer, st in list(self.consumers.items()):
            try:
                self.refresh(consumer, st)
            except Exception:
                report_error("confluent_kafka.refresh")
            if consumer not in self.consumers:
                continue  # closed meanwhile
            for (topic, partition), p in list(st.partitions.items()):
                yield (
                    {
                        signals.ATTR_MESSAGING_SYSTEM: "kafka",
                        signals.ATTR_MESSAGING_CONSUMER_GROUP: st.group,
                        signals.ATTR_MESSAGING_DESTINATION: topic,
                        signals.ATTR_MESSAGING_PARTITION: str(partition),
                    },
                    p,
                )

    @staticmethod
    def offset_lag(p: _Partition) -> int | None:
        start = p.position if p.position >= 0 else p.committed
        if p.high_watermark < 0 or start < 0:
            return None
        return max(0, p.high_watermark - start)

    def _lags(self):
        for attrs, p in self._rows():
            lag = self.offset_lag(p)
            if lag is not None:
                yield Observation(lag, attrs)

    def _time_lags(self):
        now = time.time()
        for attrs, p in self._rows():
            if p.last_ts is None:
                continue
            behind = (self.offset_lag(p) or 0) > 0
            yield Observation(max(0.0, now - p.last_ts) if behind else p.processed_lag_s or 0.0, attrs)

    def _high_watermarks(self):
        for attrs, p in self._rows():
            if p.high_watermark >= 0:
                yield Observation(p.high_watermark, attrs)

    def _committed(self):
        for attrs, p in self._rows():
            if p.committed >= 0:
                yield Observation(p.committed, attrs)
