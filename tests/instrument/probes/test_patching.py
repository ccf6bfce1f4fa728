"""The shared plumbing: reversible patches, shared observable instruments, error guard."""

from __future__ import annotations

import logging

from opentelemetry.metrics import Observation

from chokepoint.instrument.probes.patching import BaseProbe, instruments_for


class Target:
    def greet(self):
        return "hello"


class Child(Target):
    pass


def test_patch_and_uninstall_restore_own_and_inherited_attributes(metrics):
    probe = BaseProbe(metrics.meter)
    probe.patch(Target, "greet", lambda original: lambda self: original(self).upper())
    probe.patch(Child, "greet", lambda original: lambda self: original(self) + "!")
    assert Child().greet() == "HELLO!"
    assert Child.greet.__wrapped__ is not None
    probe.uninstall()
    assert Target().greet() == "hello" and "greet" not in Child.__dict__


def test_patch_wrapped_over_by_someone_else_is_left_in_place(metrics):
    probe = BaseProbe(metrics.meter)
    probe.patch(Target, "greet", lambda original: lambda self: original(self) + "?")
    ours = Target.greet
    Target.greet = lambda self: ours(self) + "#"  # another tool wraps our wrapper
    try:
        probe.uninstall()
        assert Target().greet() == "hello?#"
    finally:
        Target.greet = ours.__wrapped__


def test_two_probes_feed_one_gauge_and_a_failing_source_is_ignored(metrics):
    a, b, c = BaseProbe(metrics.meter), BaseProbe(metrics.meter), BaseProbe(metrics.meter)
    a.observe("test.gauge", "1", "", lambda: [Observation(1, {"src": "a"})])
    b.observe("test.gauge", "1", "", lambda: [Observation(2, {"src": "b"})])
    c.observe("test.gauge", "1", "", lambda: 1 / 0)
    assert instruments_for(metrics.meter) is a.instruments
    assert sorted(p.value for p in metrics.points("test.gauge")) == [1, 2]
    a.uninstall()
    assert [p.value for p in metrics.points("test.gauge")] == [2]


def test_uninstall_twice_is_harmless(metrics, caplog):
    from chokepoint.instrument.probes.db_pool import SQLAlchemyPoolProbe

    caplog.set_level(logging.DEBUG, logger="chokepoint.instrument.probes")
    probe = SQLAlchemyPoolProbe(metrics.meter)
    probe.uninstall()
    probe.uninstall()
    assert "probe error" not in caplog.text
