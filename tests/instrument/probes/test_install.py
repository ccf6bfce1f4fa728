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
