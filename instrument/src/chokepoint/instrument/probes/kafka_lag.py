"""Kafka consumer-lag probes: ``confluent_kafka`` (confluent-kafka ``Consumer``),
``aiokafka`` (aiokafka ``AIOKafkaConsumer``) and ``kafka_python`` (kafka-python
``KafkaConsumer``).

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
partition, so lag keeps growing while the consumer is paused or stuck.  A partition with
nothing processed and nothing committed counts from the log start when the consumer reads
from the earliest (``auto.offset.reset=earliest``), as Kafka's own tools count it.  Between
refreshes the locally cached high watermark (updated by every fetch) is used.

aiokafka: ``AIOKafkaConsumer.start/getone/getmany/stop`` are wrapped the same way;
its broker queries are coroutines, so at collection the probe schedules
``end_offsets()`` + ``committed()`` on the consumer's own event loop (without waiting)
and their answers show at the next collection; the locally known high watermark
(``highwater()``) is used meanwhile.  A partition the app has taken nothing from yet counts
from the consumer's fetch position (``position()``).

kafka-python: ``KafkaConsumer.__next__`` (iteration) and ``poll()`` note each record the
app is handed; the high watermark is the consumer's own fetch state (``highwater()``, updated
by every fetch response).  A ``KafkaConsumer`` is not thread-safe, so the collecting thread
asks the broker nothing: a partition the app has taken no record from yet counts from the
consumer's own fetch position.

confluent-kafka: ``Consumer`` and ``DeserializingConsumer`` are replaced by tracking
subclasses; only consumers created after install are tracked (code that did
``from confluent_kafka import Consumer`` earlier keeps the original class).  Install after the OpenTelemetry
confluent-kafka instrumentor, which also replaces the class: the probe subclasses
whatever ``confluent_kafka.Consumer`` is at install time.
"""

from __future__ import annotations

import asyncio
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
    __slots__ = ("committed", "high_watermark", "last_ts", "position", "processed_lag_s", "start")

    def __init__(self) -> None:
        self.position = -1  # next offset to process; -1 unknown
        self.committed = -1
        self.start = -1  # where the consumer starts without a position or committed offset (its fetch position, or the log start)
        self.high_watermark = -1
        self.last_ts: float | None = None  # timestamp (s) of the last processed record
        self.processed_lag_s: float | None = None  # now − timestamp when it was processed


class _ConsumerState:
    def __init__(self, group: str) -> None:
        self.group = group
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self.refreshed_at = float("-inf")
        self.lock = threading.Lock()
        self.from_earliest = False  # auto.offset.reset=earliest: a partition with nothing committed starts at the log start

    def partition(self, topic: str, partition: int) -> _Partition:
        p = self.partitions.get((topic, partition))
        if p is None:
            p = self.partitions.setdefault((topic, partition), _Partition())
        return p


class _LagProbe(BaseProbe):
    """Shared by the client probes: consumer registry, per-record bookkeeping, the four gauges."""

    def __init__(self, meter, refresh_interval_s: float | None) -> None:
        super().__init__(meter)
        if refresh_interval_s is None:
            refresh_interval_s = float(os.environ.get("CHOKEPOINT_KAFKA_LAG_REFRESH_S", "5"))
        self.refresh_interval_s = refresh_interval_s
        self.consumers: weakref.WeakKeyDictionary[Any, _ConsumerState] = weakref.WeakKeyDictionary()
        self.observe(signals.KAFKA_CONSUMER_LAG, "{message}", "High watermark minus consumer position", self._lags)
        self.observe(signals.KAFKA_CONSUMER_TIME_LAG, "s", "How far behind in time the consumer is", self._time_lags)
        self.observe(signals.KAFKA_CONSUMER_HIGH_WATERMARK, "{offset}", "Partition high watermark", self._high_watermarks)
        self.observe(signals.KAFKA_CONSUMER_COMMITTED_OFFSET, "{offset}", "Committed offset of the group", self._committed)

    @staticmethod
    def note(st: _ConsumerState, topic: str, partition: int, offset: int, ts_ms: int | None, now: float) -> None:
        """One processed record: the position moves past it; remember its timestamp."""
        p = st.partition(topic, partition)
        p.position = offset + 1
        if ts_ms is not None and ts_ms >= 0:
            p.last_ts = ts_ms / 1000.0
            p.processed_lag_s = max(0.0, now - p.last_ts)

    def refresh(self, consumer, st: _ConsumerState) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

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
        start = p.position if p.position >= 0 else p.committed if p.committed >= 0 else p.start
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


class KafkaLagProbe(_LagProbe):
    name = "confluent_kafka"

    def __init__(self, meter, *, refresh_interval_s: float | None = None) -> None:
        try:
            import confluent_kafka
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs confluent-kafka: {e}") from e
        super().__init__(meter, refresh_interval_s)
        self._kafka = confluent_kafka
        self._no_timestamp = confluent_kafka.TIMESTAMP_NOT_AVAILABLE
        self.consumer_class = self._make_consumer_class(confluent_kafka.Consumer)
        self.patch(confluent_kafka, "Consumer", lambda original: self.consumer_class)
        deserializing = getattr(confluent_kafka, "DeserializingConsumer", None)
        if deserializing is not None:
            self.deserializing_consumer_class = self._make_consumer_class(deserializing)
            self.patch(confluent_kafka, "DeserializingConsumer", lambda original: self.deserializing_consumer_class)

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

        LagTrackingConsumer.__name__ = LagTrackingConsumer.__qualname__ = base.__name__
        LagTrackingConsumer.__module__ = base.__module__
        return LagTrackingConsumer

    # ------------------------------------------------------------------ hot path
    def track(self, consumer, args, kwargs) -> None:
        try:
            conf = args[0] if args and isinstance(args[0], dict) else kwargs
            st = self.consumers[consumer] = _ConsumerState(str(conf.get("group.id", "")))
            st.from_earliest = str(conf.get("auto.offset.reset", "latest")).lower() in ("earliest", "smallest", "beginning")
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
                ts_type, ts_ms = msg.timestamp()
                self.note(st, msg.topic(), msg.partition(), msg.offset(), None if ts_type == self._no_timestamp else ts_ms, now)
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
                        low, high = consumer.get_watermark_offsets(tp, timeout=_QUERY_TIMEOUT_S, cached=False)
                    else:
                        low, high = consumer.get_watermark_offsets(tp, cached=True)
                    if st.from_earliest and low is not None and low >= 0:
                        p.start = low  # nothing committed yet: the group starts at the log start
                    if high is not None and high >= 0:
                        p.high_watermark = max(p.high_watermark, high) if not due else high
            except RuntimeError:  # consumer closed meanwhile
                self.consumers.pop(consumer, None)
            except self._kafka.KafkaException:
                report_error("confluent_kafka.refresh")


class AiokafkaLagProbe(_LagProbe):
    """aiokafka ``AIOKafkaConsumer``: records from ``getone()`` / ``getmany()``; broker
    queries (``end_offsets``, ``committed``) run as a task on the consumer's own loop,
    scheduled at collection — their answers show at the next collection."""

    name = "aiokafka"

    def __init__(self, meter, *, refresh_interval_s: float | None = None) -> None:
        try:
            import aiokafka
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs aiokafka: {e}") from e
        super().__init__(meter, refresh_interval_s)
        self._loops: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._queries: set = set()
        probe = self

        def wrap_start(original):
            async def start(consumer, *args, **kwargs):
                result = await original(consumer, *args, **kwargs)
                if probe.active:
                    probe.register(consumer)
                return result

            return start

        def wrap_getone(original):
            async def getone(consumer, *partitions):
                record = await original(consumer, *partitions)
                if probe.active:
                    probe.seen(consumer, (record,))
                return record

            return getone

        def wrap_getmany(original):
            async def getmany(consumer, *partitions, **kwargs):
                batches = await original(consumer, *partitions, **kwargs)
                if probe.active and batches:
                    for records in batches.values():
                        probe.seen(consumer, records)
                return batches

            return getmany

        def wrap_stop(original):
            async def stop(consumer, *args, **kwargs):
                probe.consumers.pop(consumer, None)
                return await original(consumer, *args, **kwargs)

            return stop

        cls = aiokafka.AIOKafkaConsumer
        self.patch(cls, "start", wrap_start)
        self.patch(cls, "getone", wrap_getone)
        self.patch(cls, "getmany", wrap_getmany)
        self.patch(cls, "stop", wrap_stop)

    def register(self, consumer) -> _ConsumerState | None:
        try:
            st = self.consumers.get(consumer)
            if st is None:
                st = self.consumers[consumer] = _ConsumerState(str(getattr(consumer, "_group_id", None) or ""))
                self._loops[consumer] = asyncio.get_running_loop()
            return st
        except Exception:
            report_error("aiokafka.register")
            return None

    def seen(self, consumer, records) -> None:
        try:
            st = self.register(consumer)
            if st is None:
                return
            now = time.time()
            for r in records:
                self.note(st, r.topic, r.partition, r.offset, r.timestamp, now)
        except Exception:
            report_error("aiokafka.seen")

    def refresh(self, consumer, st: _ConsumerState) -> None:
        with st.lock:
            for tp in list(consumer.assignment()):  # local state: cheap
                p = st.partition(tp.topic, tp.partition)
                high = consumer.highwater(tp)
                if high is not None and high >= 0:
                    p.high_watermark = max(p.high_watermark, high)
            if time.monotonic() - st.refreshed_at < self.refresh_interval_s:
                return
            loop = self._loops.get(consumer)
            if loop is None or loop.is_closed():
                return
            st.refreshed_at = time.monotonic()
            future = asyncio.run_coroutine_threadsafe(self._query(consumer, st), loop)
            self._queries.add(future)
            future.add_done_callback(self._queries.discard)

    async def _query(self, consumer, st: _ConsumerState) -> None:
        try:
            assigned = list(consumer.assignment())
            if not assigned:
                return
            ends = await asyncio.wait_for(consumer.end_offsets(assigned), _QUERY_TIMEOUT_S)
            for tp, high in ends.items():
                st.partition(tp.topic, tp.partition).high_watermark = high
            for tp in assigned:
                p = st.partition(tp.topic, tp.partition)
                committed = await asyncio.wait_for(consumer.committed(tp), _QUERY_TIMEOUT_S)
                if committed is not None and committed >= 0:
                    p.committed = committed
                if p.position < 0:  # nothing taken from it yet: the consumer's own fetch position
                    position = await asyncio.wait_for(consumer.position(tp), _QUERY_TIMEOUT_S)
                    if isinstance(position, int) and position >= 0:
                        p.start = position
        except Exception:
            report_error("aiokafka.query")


class KafkaPythonLagProbe(_LagProbe):
    """kafka-python ``KafkaConsumer``: records from iteration and ``poll()``; high watermarks
    from the consumer's local fetch state (no broker query from the collecting thread)."""

    name = "kafka_python"

    def __init__(self, meter, *, refresh_interval_s: float | None = None) -> None:
        try:
            from kafka import KafkaConsumer
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs kafka-python: {e}") from e
        super().__init__(meter, refresh_interval_s)
        probe = self

        def wrap_next(original):
            def __next__(consumer):
                record = original(consumer)
                if probe.active:
                    probe.seen(consumer, (record,))
                return record

            return __next__

        def wrap_poll(original):
            def poll(consumer, *args, **kwargs):
                batches = original(consumer, *args, **kwargs)
                # iteration polls with update_offsets=False and hands records out one by one (__next__)
                if probe.active and batches and kwargs.get("update_offsets", True):
                    for records in batches.values():
                        probe.seen(consumer, records)
                return batches

            return poll

        def wrap_close(original):
            def close(consumer, *args, **kwargs):
                probe.consumers.pop(consumer, None)
                return original(consumer, *args, **kwargs)

            return close

        self.patch(KafkaConsumer, "__next__", wrap_next)
        self.patch(KafkaConsumer, "poll", wrap_poll)
        self.patch(KafkaConsumer, "close", wrap_close)

    def seen(self, consumer, records) -> None:
        try:
            st = self.consumers.get(consumer)
            if st is None:
                st = self.consumers[consumer] = _ConsumerState(str(consumer.config.get("group_id") or ""))
            now = time.time()
            for r in records:
                self.note(st, r.topic, r.partition, r.offset, r.timestamp, now)
        except Exception:
            report_error("kafka_python.seen")

    def refresh(self, consumer, st: _ConsumerState) -> None:
        states = getattr(getattr(consumer, "_subscription", None), "assignment", None) or {}
        with st.lock:
            for tp in list(consumer.assignment()):  # local state: no broker query
                p = st.partition(tp.topic, tp.partition)
                high = consumer.highwater(tp)
                if high is not None and high >= 0:
                    p.high_watermark = max(p.high_watermark, high)
                # a partition the app has taken nothing from yet: the consumer's own fetch position
                position = getattr(getattr(states.get(tp), "position", None), "offset", None)
                if isinstance(position, int) and position >= 0:
                    p.start = position
