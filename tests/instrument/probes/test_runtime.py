"""Runtime probe: CPU, RSS, threads, GC pauses, event-loop lag — on this very process."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import psutil

from chokepoint.instrument import signals
from chokepoint.instrument.probes.runtime import RuntimeProbe, rss_bytes


def test_cpu_utilization_follows_work(metrics, installed):
    installed.append(RuntimeProbe(metrics.meter))
    metrics.collect()
    time.sleep(0.2)
    idle = metrics.value(signals.PROCESS_CPU_UTILIZATION)
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        pass
    busy = metrics.value(signals.PROCESS_CPU_UTILIZATION)
    assert 0 <= idle < busy <= 1.5


def test_rss_and_threads(metrics, installed):
    installed.append(RuntimeProbe(metrics.meter))
    got = metrics.collect()
    assert abs(metrics.value(signals.PROCESS_MEMORY_USAGE, None, got) - psutil.Process().memory_info().rss) < 16 * 2**20
    assert rss_bytes() > 0
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait)
    extra.start()
    try:
        assert metrics.value(signals.PROCESS_THREAD_COUNT) == threading.active_count()
    finally:
        stop.set()
        extra.join()


def test_gc_pause_one_sample_per_collection(metrics, installed):
    installed.append(RuntimeProbe(metrics.meter))
    gen2 = {signals.ATTR_GC_GENERATION: 2}
    before = sum(p.count for p in metrics.points(signals.RUNTIME_GC_PAUSE_TIME, gen2))
    gc.collect(2)
    gc.collect(2)
    point = metrics.point(signals.RUNTIME_GC_PAUSE_TIME, gen2)
    assert point.count == before + 2 and point.sum > 0


def test_event_loop_lag_grows_when_a_coroutine_blocks(metrics, installed):
    installed.append(RuntimeProbe(metrics.meter, loop_interval_s=0.02))

    async def main():
        await asyncio.sleep(0.1)
        calm = metrics.point(signals.RUNTIME_EVENT_LOOP_LAG)
        time.sleep(0.3)  # blocking call inside async code
        await asyncio.sleep(0.1)
        return calm.count, calm.max

    calm_count, calm_max = asyncio.run(main())
    blocked = metrics.point(signals.RUNTIME_EVENT_LOOP_LAG)
    assert calm_count >= 2 and calm_max < 0.25
    assert blocked.max >= 0.25


def test_loop_already_running_at_install_is_watched(metrics, installed):
    async def main():
        installed.append(RuntimeProbe(metrics.meter, loop_interval_s=0.01))
        await asyncio.sleep(0.1)
        assert all(t.get_coro().__name__ == "main" for t in asyncio.all_tasks())  # a timer, not a task

    asyncio.run(main())
    assert metrics.point(signals.RUNTIME_EVENT_LOOP_LAG).count >= 3


def test_uninstall_removes_gc_callback(metrics):
    probe = RuntimeProbe(metrics.meter)
    assert probe._on_gc in gc.callbacks
    probe.uninstall()
    assert probe._on_gc not in gc.callbacks
    assert asyncio.events._set_running_loop.__name__ == "_set_running_loop" and not hasattr(asyncio.events._set_running_loop, "_chokepoint_probe")


def test_short_young_generation_pauses_are_not_recorded(metrics, installed):
    installed.append(RuntimeProbe(metrics.meter, gc_min_pause_s=10.0))
    gen0 = {signals.ATTR_GC_GENERATION: 0}
    for _ in range(5):
        gc.collect(0)
    assert metrics.points(signals.RUNTIME_GC_PAUSE_TIME, gen0) == []
    gc.collect(1)
    assert metrics.point(signals.RUNTIME_GC_PAUSE_TIME, {signals.ATTR_GC_GENERATION: 1}).count >= 1
