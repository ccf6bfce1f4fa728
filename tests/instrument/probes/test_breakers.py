"""Breaker probes on real pybreaker, aiobreaker and circuitbreaker objects."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import aiobreaker
import circuitbreaker
import pybreaker
import pytest

from chokepoint.instrument import signals
from chokepoint.instrument.probes.breakers import AioBreakerProbe, CircuitBreakerPackageProbe, PyBreakerProbe

NAME, RESULT = signals.ATTR_BREAKER_NAME, signals.ATTR_BREAKER_RESULT
FROM, TO = signals.ATTR_BREAKER_FROM, signals.ATTR_BREAKER_TO


def boom():
    raise ConnectionError("dependency down")


def calls(metrics, name, got):
    return {p.attributes[RESULT]: p.value for p in metrics.points(signals.BREAKER_CALLS, {NAME: name}, got)}


def transitions(metrics, name, got):
    return {(p.attributes[FROM], p.attributes[TO]): p.value for p in metrics.points(signals.BREAKER_TRANSITIONS, {NAME: name}, got)}


def test_pybreaker_opens_rejects_and_recovers(metrics, installed):
    installed.append(PyBreakerProbe(metrics.meter))
    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=0.2, name="payments")
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    with pytest.raises(pybreaker.CircuitBreakerError):  # the failure that trips it
        breaker.call(boom)
    with pytest.raises(pybreaker.CircuitBreakerError):  # refused without running
        breaker.call(boom)
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "payments"}, got) == 2
    assert calls(metrics, "payments", got) == {"failure": 2, "rejected": 1}
    assert transitions(metrics, "payments", got) == {("closed", "open"): 1}

    time.sleep(0.25)
    assert breaker.call(lambda: "ok") == "ok"
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "payments"}, got) == 0
    assert calls(metrics, "payments", got) == {"failure": 2, "rejected": 1, "success": 1}
    assert transitions(metrics, "payments", got) == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}


def test_pybreaker_decorator_and_breaker_created_before_install(metrics, installed):
    early = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60)  # unnamed, made before install

    @early
    def fetch():
        return 42

    installed.append(PyBreakerProbe(metrics.meter))
    assert fetch() == 42
    assert calls(metrics, "pybreaker-1", metrics.collect()) == {"success": 1}


def test_aiobreaker_async_calls(metrics, installed):
    installed.append(AioBreakerProbe(metrics.meter))
    breaker = aiobreaker.CircuitBreaker(fail_max=2, timeout_duration=timedelta(seconds=60), name="inventory")

    async def fail():
        raise ConnectionError("down")

    async def main():
        for _ in range(3):
            with pytest.raises((ConnectionError, aiobreaker.CircuitBreakerError)):
                await breaker.call_async(fail)

    asyncio.run(main())
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "inventory"}, got) == 2
    assert calls(metrics, "inventory", got) == {"failure": 2, "rejected": 1}
    assert transitions(metrics, "inventory", got) == {("closed", "open"): 1}


def test_circuitbreaker_package(metrics, installed):
    installed.append(CircuitBreakerPackageProbe(metrics.meter))

    @circuitbreaker.circuit(failure_threshold=2, recovery_timeout=60, name="search")
    def search():
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            search()
    with pytest.raises(circuitbreaker.CircuitBreakerError):
        search()
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "search"}, got) == 2
    assert calls(metrics, "search", got) == {"failure": 2, "rejected": 1}
    assert transitions(metrics, "search", got) == {("closed", "open"): 1}


def test_uninstall_detaches_listener_and_restores_class(metrics):
    original_call = pybreaker.CircuitBreaker.call
    probe = PyBreakerProbe(metrics.meter)
    breaker = pybreaker.CircuitBreaker(name="detach")
    assert probe.listener in breaker.listeners
    probe.uninstall()
    assert probe.listener not in breaker.listeners
    assert pybreaker.CircuitBreaker.call is original_call
    breaker.call(lambda: None)
    assert signals.BREAKER_CALLS not in metrics.collect()


def test_aiobreaker_half_open_trial_closes_the_breaker(metrics, installed):
    installed.append(AioBreakerProbe(metrics.meter))
    breaker = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=0.1), name="pricing")

    async def fail():
        raise ConnectionError("down")

    async def ok():
        return "ok"

    async def main():
        with pytest.raises(aiobreaker.CircuitBreakerError):
            await breaker.call_async(fail)
        await asyncio.sleep(0.15)
        return await breaker.call_async(ok)

    assert asyncio.run(main()) == "ok"
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "pricing"}, got) == 0
    assert calls(metrics, "pricing", got) == {"failure": 1, "success": 1}
    assert transitions(metrics, "pricing", got) == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}


def test_circuitbreaker_package_recovery_and_breaker_decorated_before_install(metrics, installed):
    healthy = {"now": False}

    @circuitbreaker.circuit(failure_threshold=1, recovery_timeout=0.1, name="geo")
    def geo():
        if not healthy["now"]:
            raise ConnectionError("down")
        return "ok"

    installed.append(CircuitBreakerPackageProbe(metrics.meter))  # finds "geo" in CircuitBreakerMonitor
    assert metrics.value(signals.BREAKER_STATE, {NAME: "geo"}) == 0
    with pytest.raises(ConnectionError):
        geo()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "geo"}) == 2
    time.sleep(0.15)  # recovery timeout elapsed: implicitly half-open
    assert metrics.value(signals.BREAKER_STATE, {NAME: "geo"}) == 1
    healthy["now"] = True
    assert geo() == "ok"
    got = metrics.collect()
    assert metrics.value(signals.BREAKER_STATE, {NAME: "geo"}, got) == 0
    assert calls(metrics, "geo", got) == {"failure": 1, "success": 1}
    assert transitions(metrics, "geo", got) == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}


def test_breaker_probe_never_raises_into_user_code(metrics, installed):
    probe = PyBreakerProbe(metrics.meter)
    installed.append(probe)
    probe.calls = None  # break the probe's own bookkeeping
    breaker = pybreaker.CircuitBreaker(name="robust")
    assert breaker.call(lambda: 5) == 5
    with pytest.raises(ConnectionError):
        breaker.call(boom)


def test_nested_breakers_count_their_own_rejections(metrics, installed):
    installed.append(PyBreakerProbe(metrics.meter))
    inner = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60, name="inner")
    outer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, name="outer")
    with pytest.raises(pybreaker.CircuitBreakerError):
        inner.call(boom)  # trips inner
    with pytest.raises(pybreaker.CircuitBreakerError):
        outer.call(lambda: inner.call(boom))  # outer ran; inner refused
    got = metrics.collect()
    assert calls(metrics, "inner", got) == {"failure": 1, "rejected": 1}
    assert calls(metrics, "outer", got) == {"failure": 1}
