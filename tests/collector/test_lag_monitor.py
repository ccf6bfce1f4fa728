"""Lag monitor logic with a fake AdminClient (the real broker is in tests/integration/test_collector_kafka_lag.py)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

from confluent_kafka import KafkaException, TopicPartition

from chokepoint.collector.lag_monitor import KafkaLagMonitor


def done(value) -> Future:
    future: Future = Future()
    if isinstance(value, Exception):
        future.set_exception(value)
    else:
        future.set_result(value)
    return future


class FakeAdmin:
    def __init__(self) -> None:
        self.committed = {
            "billing": [("orders", 0, 40), ("orders", 1, -1001)],
            "audit": [("orders", 0, 100)],
            "broken": KafkaException("coordinator not available"),
        }
        self.log_end = {("orders", 0): 100, ("orders", 1): 7}

    def list_consumer_groups(self, request_timeout=None):
        return done(SimpleNamespace(valid=[SimpleNamespace(group_id=g) for g in self.committed]))

    def list_consumer_group_offsets(self, requests, request_timeout=None):
        group = requests[0].group_id
        rows = self.committed[group]
        if isinstance(rows, Exception):
            return {group: done(rows)}
        tps = [SimpleNamespace(topic=t, partition=p, offset=o, error=None) for t, p, o in rows]
        return {group: done(SimpleNamespace(topic_partitions=tps))}

    def list_offsets(self, request, request_timeout=None):
        return {TopicPartition(tp.topic, tp.partition): done(SimpleNamespace(offset=self.log_end[(tp.topic, tp.partition)])) for tp in request}


class RecordingStore:
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def record_consumer_offsets(self, group, topic, partition, committed_offset, log_end_offset, timestamp_s, time_lag_s=None, source="pull"):
        self.rows.append((group, topic, partition, committed_offset, log_end_offset, timestamp_s, time_lag_s, source))


def monitor_with(admin, store, times):
    clock = iter(times)
    monitor = KafkaLagMonitor(store, "unused:9092", history_len=3, clock=lambda: next(clock))
    monitor._admin = admin
    return monitor


def test_poll_records_committed_partitions_and_skips_uncommitted_and_failed_groups():
    admin, store = FakeAdmin(), RecordingStore()
    monitor = monitor_with(admin, store, [1000.0])
    assert monitor.poll_once() == 2
    assert sorted((*r[:5], r[7]) for r in store.rows) == [("audit", "orders", 0, 100, 100, "pull"), ("billing", "orders", 0, 40, 100, "pull")]
    assert monitor.errors == 1 and "broken" in monitor.last_error


def test_time_lag_is_interpolated_in_the_log_end_history_and_history_is_bounded():
    admin, store = FakeAdmin(), RecordingStore()
    del admin.committed["broken"], admin.committed["audit"]
    monitor = monitor_with(admin, store, [1000.0, 1010.0, 1020.0, 1030.0])
    monitor.poll_once()  # log end 100 at t=1000
    admin.log_end[("orders", 0)] = 200
    admin.committed["billing"] = [("orders", 0, 150)]
    monitor.poll_once()  # log end 200 at t=1010; offset 150 passed half-way → t=1005
    assert store.rows[-1][6] == 5.0
    admin.log_end[("orders", 0)] = 300
    monitor.poll_once()
    admin.log_end[("orders", 0)] = 400
    monitor.poll_once()  # offset 150 passed at t=1005, now t=1030
    assert store.rows[-1][6] == 25.0
    assert monitor.history("orders", 0) == [(1010.0, 200), (1020.0, 300), (1030.0, 400)]


def test_caught_up_consumer_has_zero_time_lag():
    admin, store = FakeAdmin(), RecordingStore()
    admin.committed = {"audit": [("orders", 0, 100)]}
    monitor = monitor_with(admin, store, [5.0])
    monitor.poll_once()
    assert store.rows[0][6] == 0.0


def test_no_groups_records_nothing():
    admin, store = FakeAdmin(), RecordingStore()
    admin.committed = {}
    monitor = monitor_with(admin, store, [5.0])
    assert monitor.poll_once() == 0 and store.rows == []
