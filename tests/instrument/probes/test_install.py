"""install_all: auto-enable with quiet skips, explicit names with errors, env opt-out."""

from __future__ import annotations

import pytest

from chokepoint.instrument.probes import PROBES, Probe, ProbeUnavailable, install_all


def _names(probes):
    return [p.name for p in probes]


def test_auto_enables_every_installed_library_and_uninstalls(metrics, installed):
    probes = install_all(metrics.meter)
    installed.extend(probes)
    assert _names(probes) == list(PROBES)  # every library is in the test environment
    assert all(isinstance(p, Probe) for p in probes)


def test_missing_library_is_a_quiet_skip_when_auto_enabled(metrics, installed, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gunicorn", None)  # import gunicorn → ImportError
    monkeypatch.setitem(__import__("sys").modules, "gunicorn.workers", None)
    probes = install_all(metrics.meter)
    installed.extend(probes)
    assert "gunicorn" not in _names(probes) and "runtime" in _names(probes)


def test_missing_library_asked_for_by_name_is_an_error_and_undoes_the_rest(metrics, monkeypatch):
    import sqlalchemy.pool

    original = sqlalchemy.pool.QueuePool._do_get
    monkeypatch.setitem(__import__("sys").modules, "pybreaker", None)
    with pytest.raises(ProbeUnavailable, match="pybreaker"):
        install_all(metrics.meter, enabled={"sqlalchemy_pool", "pybreaker"})
    assert sqlalchemy.pool.QueuePool._do_get is original


def test_unknown_name_and_disabled_env(metrics, installed, monkeypatch):
    with pytest.raises(ValueError, match="nosuch"):
        install_all(metrics.meter, enabled={"nosuch"})
    monkeypatch.setenv("CHOKEPOINT_DISABLED_PROBES", "runtime, confluent_kafka")
    probes = install_all(metrics.meter, disabled={"gunicorn"})
    installed.extend(probes)
    assert not {"runtime", "confluent_kafka", "gunicorn"} & set(_names(probes))
    only = install_all(metrics.meter, enabled={"runtime"})
    installed.extend(only)
    assert _names(only) == ["runtime"]


class FakeLean:
    """Duck-typed lean registry: remembers every record/add."""

    def __init__(self):
        self.records: list = []

    def histogram(self, name, unit, description=""):
        return FakeLeanInstrument(name, self.records)

    def counter(self, name, unit, description=""):
        return FakeLeanInstrument(name, self.records)


class FakeLeanInstrument:
    def __init__(self, name, records):
        self.name, self.records = name, records

    def record(self, value, values, keys):
        self.records.append((self.name, values, keys))

    def add(self, amount, values, keys):
        self.records.append((self.name, values, keys))


def test_hot_path_instruments_go_to_a_lean_registry_when_given(metrics, installed, tmp_path):
    import sqlalchemy as sa

    from chokepoint.instrument import signals

    lean = FakeLean()
    installed.extend(install_all(metrics.meter, enabled={"sqlalchemy_pool"}, lean=lean))
    engine = sa.create_engine(f"sqlite:///{tmp_path}/lean.sqlite", poolclass=sa.pool.QueuePool)
    with engine.connect():
        pass
    name = f"sqlite:///{tmp_path}/lean.sqlite"
    keys = (signals.ATTR_DB_POOL_NAME,)
    assert (signals.DB_POOL_WAIT_TIME, (name,), keys) in lean.records
    assert (signals.DB_POOL_USE_TIME, (name,), keys) in lean.records
    got = metrics.collect()
    assert signals.DB_POOL_WAIT_TIME not in got  # not in the SDK ...
    assert metrics.value(signals.DB_POOL_CONNECTION_MAX, {signals.ATTR_DB_POOL_NAME: name}, got) == 15  # ... gauges still are


def test_a_second_install_all_does_not_double_count(metrics, installed):
    first = install_all(metrics.meter, enabled={"runtime", "pybreaker"})
    installed.extend(first)
    second = install_all(metrics.meter, enabled={"runtime", "pybreaker"})
    installed.extend(second)
    assert _names(first) == ["runtime", "pybreaker"] and second == []
    for probe in first:
        probe.uninstall()
    third = install_all(metrics.meter, enabled={"runtime"})  # allowed again once uninstalled
    installed.extend(third)
    assert _names(third) == ["runtime"]
