"""Runtime probe (``runtime``): CPU, memory, threads, GC pauses and asyncio event-loop lag.

=====================================  ==================================================
``process.cpu.utilization``            gauge, CPU time / wall time since the previous
                                       collection (by any reader), as a fraction of ONE
                                       core (a CPython process pinned by the GIL sits
                                       near 1.0; several busy threads in C code can
                                       exceed it)
``chokepoint.runtime.cpu.run_queue_wait``  gauge, time the process's threads were runnable
                                       but waiting for a CPU since the previous
                                       collection, as a fraction of ONE core (Linux
                                       only; see "CPU demand" below)
``process.memory.usage``               gauge, resident set size in bytes
``process.thread.count``               gauge, live Python threads
``chokepoint.runtime.gc.pause_time``   histogram (s), one sample per generation-1/2
                                       collection and per generation-0 collection of at
                                       least ``CHOKEPOINT_GC_MIN_PAUSE_S`` (default 0.0005),
                                       with ``cpython.gc.generation``
``chokepoint.runtime.event_loop.lag``  histogram (s), how late a timer on each running
                                       asyncio loop fires: blocking code in async handlers
                                       (the loop thread's own wait for a CPU taken out,
                                       Linux; see "Event-loop lag" below)
``chokepoint.runtime.event_loop.busy`` gauge, share of wall time since the previous
                                       collection the loop spent running callbacks
                                       (outside its selector's ``select``); the busiest
                                       loop of the process
``chokepoint.runtime.event_loop.stall.max``  gauge (s), the longest single stretch the loop
                                       ran without returning to ``select`` since the
                                       previous collection (a stall still under way counts):
                                       one loop iteration, i.e. every callback that was
                                       ready in it (three requests to a handler blocking
                                       0.1 s, ready together, read 0.3 s)
``chokepoint.runtime.gc.cpu_time``     counter (s), thread CPU time (``time.thread_time``)
                                       spent inside collections: GC's CPU, apart from
                                       wall-clock pauses stretched by a CPU-starved host
=====================================  ==================================================

Gauges are read only at collection (no thread).  GC pauses come from ``gc.callbacks``;
young-generation collections run hundreds of times a second in allocation-heavy code
and a histogram record costs a few µs, so sub-threshold gen-0 pauses are not recorded
(``bench/probes/run.py`` measures the cost).  The callback only queues a pause (a
bounded deque, no lock); the pauses are recorded at the next collection, before the
histograms are read.  A GC callback runs inside whatever allocation triggered it — also
one made while a histogram holds its own lock (recording a value, or being read by the
exporter) — and recording from there would wait forever for that lock.

CPU demand
----------
``process.cpu.utilization`` is what the process *got*.  On a contended host (a load
generator, the database and the sidecar on the same few cores) a CPU-bound process gets
less than it wants: a CPython process pinned by the GIL may report 0.6 core while it
would use a whole one.  What it *wants* is ``cpu.utilization + cpu.run_queue_wait``: the
run-queue wait is the time its threads were ready to run and the scheduler gave the core
to someone else.  It is the per-thread ``run_delay`` of ``/proc/self/task/*/schedstat``
(second field, ns), summed over the threads and divided by the wall time since the
previous collection.  Threads that exited between two collections take their last
interval with them; new threads count from zero.

What it does and does not see: a thread waiting for the **GIL** sleeps on a condition
variable, off the run queue — but CPython's waiters wake every switch interval
(``sys.getswitchinterval()``, 5 ms) to ask the holder to drop it, and on a busy host
each wake-up waits for a CPU.  So a process whose threads contend for the GIL on a
contended host reports a wait of *several* cores: read it then as the number of its
threads waiting for a CPU on average, not as CPU it could use (the GIL caps Python code
at one core).  On a host with free cores the waiters find a CPU at once and add almost
nothing.  Time blocked on I/O, locks or sleeps is not counted.  Where
``/proc/self/task`` is absent (macOS, Windows, ``/proc`` not mounted) the gauge is not
reported at all.  Cost: one small file read per thread at collection, no thread of its
own.

Event-loop lag needs a timer on the loop.  The probe notices every loop that starts
running — asyncio sets its running loop through ``asyncio.events._set_running_loop``,
which the probe wraps (and the ``asyncio._set_running_loop`` re-export) — and the loop
already running when the probe is installed, and schedules a self-rescheduling
``call_at`` every ``CHOKEPOINT_LOOP_LAG_INTERVAL_S`` seconds (default 0.1): a handle,
not a task, so it never shows up in ``asyncio.all_tasks()``.  A loop implementation
that bound ``_set_running_loop`` before the probe was installed (uvloop imported
earlier) is seen only if it is already running at install.

Busy share and longest stall come from the loop's selector: the probe times each
``select`` call (an instance attribute on ``loop._selector``, removed by ``uninstall``;
two ``perf_counter`` calls per loop iteration).  Time outside ``select`` is time the loop
was running callbacks: a handler making a blocking call inside ``async def`` shows as a
busy share near 1 and a stall the length of the call, even though each request's server
span (which starts once the loop gets to it) looks fast.  A loop whose thread waits for a
CPU counts that wait as busy too (compare ``cpu.run_queue_wait``).  Loops without a
``_selector`` (uvloop) report lag only.

A timer is late for two reasons: code ran on the loop (or held the GIL) past the timer's
due time — the loop is *blocked*, the app's own fault — or the loop's thread was ready and
waited for a CPU the host gave to other processes — *starved*, which the run-queue wait
gauge reports as CPU demand.  Each tick reads the loop thread's ``run_delay`` from
``/proc/thread-self/schedstat`` (one small file read per tick, 10 times a second) and records
the lateness minus the run-queue wait since the previous tick, so an idle service on a
busy host does not look blocked.  The wait before the due time is subtracted too (it
cannot be told apart), so on a contended host a blocked loop reads a little low, never
high.  Where the file is missing the lateness is recorded as it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import threading
import time
import weakref

from opentelemetry.metrics import Observation

from chokepoint.instrument import signals
from chokepoint.instrument.probes.patching import BaseProbe, report_error

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident set size now: ``/proc/self/statm`` on Linux, psutil elsewhere if present."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:
        return None


_TASKS_DIR = "/proc/self/task"
_THREAD_SCHEDSTAT = "/proc/thread-self/schedstat"


def thread_run_delay_s() -> float | None:
    """Seconds the calling thread has spent runnable, waiting for a CPU (``run_delay``); ``None`` off Linux."""
    try:
        with open(_THREAD_SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def read_run_delays() -> dict[int, int] | None:
    """Per thread of this process: nanoseconds spent runnable, waiting for a CPU (``run_delay``).

    From ``/proc/self/task/<tid>/schedstat`` (``<on-cpu ns> <run-delay ns> <timeslices>``);
    ``None`` where that is not available (not Linux).  A thread that exits while being
    read is left out.
    """
    try:
        tids = os.listdir(_TASKS_DIR)
    except OSError:
        return None
    delays: dict[int, int] = {}
    for tid in tids:
        try:
            with open(f"{_TASKS_DIR}/{tid}/schedstat", "rb") as f:
                delays[int(tid)] = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return delays if delays else None


class RunQueueWait:
    """Run-queue wait as a fraction of one core between two calls of :meth:`sample`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[dict[int, int], float] | None = None
        self.sample()  # the starting point; the first real sample covers the time since install

    def sample(self) -> float | None:
        delays, wall = read_run_delays(), time.perf_counter()
        if delays is None:
            return None
        with self._lock:
            last, self._last = self._last, (delays, wall)
        if last is None or wall <= last[1]:
            return None
        before = last[0]
        waited_ns = sum(max(0, ns - before.get(tid, 0)) for tid, ns in delays.items())
        return waited_ns / 1e9 / (wall - last[1])


class RuntimeProbe(BaseProbe):
    name = "runtime"

    def __init__(self, meter, *, loop_interval_s: float | None = None, gc_min_pause_s: float | None = None) -> None:
        super().__init__(meter)
        self.loop_interval_s = loop_interval_s or float(os.environ.get("CHOKEPOINT_LOOP_LAG_INTERVAL_S", "0.1"))
        self.gc_min_pause_s = float(os.environ.get("CHOKEPOINT_GC_MIN_PAUSE_S", "0.0005")) if gc_min_pause_s is None else gc_min_pause_s
        self._cpu_lock = threading.Lock()
        self._last_cpu = (time.process_time(), time.perf_counter())
        self._gc_started: float | None = None
        self._gc_pauses: collections.deque[tuple[float, int]] = collections.deque(maxlen=10_000)  # (seconds, generation)
        self.gc_pause = self.instruments.histogram(signals.RUNTIME_GC_PAUSE_TIME, "s", "Time of one garbage collection")
        self.loop_lag = self.instruments.histogram(signals.RUNTIME_EVENT_LOOP_LAG, "s", "How late an event-loop timer fired")
        self.gc_cpu = self.instruments.counter(signals.RUNTIME_GC_CPU_TIME, "s", "Thread CPU time spent in garbage collections")
        self._gc_cpu_started: float | None = None
        self._gc_cpu_s = 0.0  # added by the GC callback, moved to the counter at collection
        self._gc_cpu_recorded = 0.0
        self._selects: list[_SelectTimer] = []
        self._busy_last: dict[int, tuple[float, float]] = {}
        self.observe(signals.RUNTIME_EVENT_LOOP_BUSY, "1", "Share of wall time the event loop ran callbacks", self._loop_busy)
        self.observe(signals.RUNTIME_EVENT_LOOP_STALL_MAX, "s", "Longest single event-loop stretch without yielding", self._loop_stall_max)
        self.observe(signals.PROCESS_CPU_UTILIZATION, "1", "CPU used as a fraction of one core", self._cpu)
        self.run_queue = RunQueueWait()
        self.observe(signals.RUNTIME_CPU_RUN_QUEUE_WAIT, "1", "Time runnable but waiting for a CPU, as a fraction of one core", self._run_queue_wait)
        self.observe(signals.PROCESS_MEMORY_USAGE, "By", "Resident set size", self._rss)
        self.observe(signals.PROCESS_THREAD_COUNT, "{thread}", "Live threads", self._threads)
        gc.callbacks.append(self._on_gc)
        self.loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        probe = self

        def wrap_set_running_loop(original):
            def _set_running_loop(loop):
                original(loop)
                if loop is not None and probe.active and loop not in probe.loops:
                    probe.watch_loop(loop)

            return _set_running_loop

        self.patch(asyncio.events, "_set_running_loop", wrap_set_running_loop)  # what asyncio's loops call
        self.patch(asyncio, "_set_running_loop", wrap_set_running_loop)  # the package re-export other loops may bind
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            self.watch_loop(running)

    # ------------------------------------------------------------------ gauges
    def _cpu(self):
        self.record_gc_pauses()  # the first gauge of every collection
        with self._cpu_lock:
            cpu, wall = time.process_time(), time.perf_counter()
            last_cpu, last_wall = self._last_cpu
            self._last_cpu = (cpu, wall)
        if wall > last_wall:
            yield Observation(max(0.0, (cpu - last_cpu) / (wall - last_wall)))

    def _run_queue_wait(self):
        waited = self.run_queue.sample()
        if waited is not None:
            yield Observation(waited)

    def _rss(self):
        rss = rss_bytes()
        if rss is not None:
            yield Observation(rss)

    def _threads(self):
        yield Observation(threading.active_count())

    # ------------------------------------------------------------------ GC
    def _on_gc(self, phase: str, info: dict) -> None:
        if not self.active:
            return
        try:
            if phase == "start":
                self._gc_started = time.perf_counter()
                self._gc_cpu_started = time.thread_time()
            elif self._gc_started is not None:
                if self._gc_cpu_started is not None:
                    self._gc_cpu_s += time.thread_time() - self._gc_cpu_started
                    self._gc_cpu_started = None
                pause, generation = time.perf_counter() - self._gc_started, info.get("generation", -1)
                self._gc_started = None
                if generation != 0 or pause >= self.gc_min_pause_s:
                    self._gc_pauses.append((pause, generation))  # recorded at collection: no lock here
        except Exception:
            report_error("runtime.gc")

    def record_gc_pauses(self) -> None:
        """Record the queued GC pauses and GC CPU time (called at collection, outside any GC callback)."""
        try:
            total = self._gc_cpu_s
            if total > self._gc_cpu_recorded:
                self.gc_cpu.add(total - self._gc_cpu_recorded)
                self._gc_cpu_recorded = total
        except Exception:
            report_error("runtime.gc_cpu")
        try:
            while True:
                try:
                    pause, generation = self._gc_pauses.popleft()
                except IndexError:
                    return
                self.gc_pause.record(pause, {signals.ATTR_GC_GENERATION: generation})
        except Exception:
            report_error("runtime.gc_record")

    # ------------------------------------------------------------------ event loop
    def _live_selects(self) -> list[_SelectTimer]:
        live = [t for t in self._selects if t.loop() is not None and not t.loop().is_closed()]
        self._selects = live
        return live

    def _loop_busy(self):
        shares = []
        for timer in self._live_selects():
            idle, wall = timer.idle_s, time.perf_counter()
            if timer.entered is not None:  # in select now: the idle time so far counts
                idle += wall - timer.entered
            last = self._busy_last.get(id(timer))
            self._busy_last[id(timer)] = (idle, wall)
            if last is not None and wall > last[1]:
                shares.append(min(1.0, max(0.0, 1.0 - (idle - last[0]) / (wall - last[1]))))
        if shares:
            yield Observation(max(shares))

    def _loop_stall_max(self):
        stalls = [timer.take_stall_max() for timer in self._live_selects()]
        if stalls:
            yield Observation(max(stalls))

    def _time_select(self, loop: asyncio.AbstractEventLoop) -> None:
        selector = getattr(loop, "_selector", None)
        select = getattr(selector, "select", None)
        if select is None or "select" in getattr(selector, "__dict__", {"select": None}):
            return  # no selector (uvloop), or timed already
        timer = _SelectTimer(loop, selector, select, self)
        selector.select = timer.select
        self._selects.append(timer)

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the lag timer on ``loop`` and time its selector (once per loop; from any thread)."""
        try:
            self.loops.add(loop)
            try:
                self._time_select(loop)
            except Exception:
                report_error("runtime.time_select")
            interval, lag, probe = self.loop_interval_s, self.loop_lag, self

            def tick(due: float, waited_before: float | None) -> None:
                if not probe.active or loop.is_closed():
                    return
                try:
                    now = loop.time()
                    waited = thread_run_delay_s()
                    late = now - due
                    if waited is not None and waited_before is not None:
                        late -= waited - waited_before  # starved (waiting for a CPU) is not blocked
                    lag.record(max(0.0, late))
                    loop.call_at(now + interval, tick, now + interval, waited)
                except Exception:
                    report_error("runtime.loop_tick")

            def start() -> None:
                due = loop.time() + interval
                loop.call_at(due, tick, due, thread_run_delay_s())

            try:
                running_here = asyncio.get_running_loop() is loop
            except RuntimeError:
                running_here = False
            if running_here:
                start()
            else:
                loop.call_soon_threadsafe(start)
        except Exception:
            report_error("runtime.watch_loop")

    def on_uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        for timer in self._selects:
            timer.undo()
        self._selects = []


class _SelectTimer:
    """Times one loop's ``selector.select``: idle seconds in all, the longest run outside it."""

    __slots__ = ("__weakref__", "entered", "idle_s", "left", "loop", "original", "probe", "selector", "stall_max")

    def __init__(self, loop, selector, original, probe: RuntimeProbe) -> None:
        self.loop = weakref.ref(loop)
        self.selector, self.original, self.probe = selector, original, probe
        self.idle_s = 0.0
        self.stall_max = 0.0
        self.entered: float | None = None  # perf_counter when select was entered, None outside it
        self.left: float | None = None  # perf_counter when select last returned

    def select(self, timeout=None):
        if not self.probe.active:
            return self.original(timeout)
        t0 = time.perf_counter()
        left = self.left
        if left is not None and t0 - left > self.stall_max:
            self.stall_max = t0 - left
        self.entered = t0
        try:
            return self.original(timeout)
        finally:
            t1 = time.perf_counter()
            self.entered, self.left = None, t1
            self.idle_s += t1 - t0

    def take_stall_max(self) -> float:
        """The longest run since the previous call (a run still under way included); resets it."""
        stall, left = self.stall_max, self.left
        if self.entered is None and left is not None:
            stall = max(stall, time.perf_counter() - left)
        self.stall_max = 0.0
        return stall

    def undo(self) -> None:
        with contextlib.suppress(Exception):
            if self.selector.__dict__.get("select") == self.select:
                del self.selector.select
