"""Bounded in-flight work."""

from __future__ import annotations

import pytest

from chokepoint.collector.admission import Admission


def test_request_limit_refuses_and_counts_then_recovers():
    admission = Admission(max_inflight_requests=2, max_inflight_bytes=1000)
    assert admission.try_acquire(10) and admission.try_acquire(10)
    assert not admission.try_acquire(10)
    assert admission.refused == 1
    admission.release(10)
    assert admission.try_acquire(10)
    assert (admission.inflight_requests, admission.inflight_bytes) == (2, 20)


def test_byte_limit_but_a_single_large_request_is_admitted_alone():
    admission = Admission(max_inflight_requests=10, max_inflight_bytes=100)
    assert admission.try_acquire(500)
    assert not admission.try_acquire(1)
    admission.release(500)
    assert admission.try_acquire(60)
    assert not admission.try_acquire(60)
    assert admission.try_acquire(40)


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Admission(0, 1)
