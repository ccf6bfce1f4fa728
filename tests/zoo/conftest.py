"""Zoo fixtures and selection.

Every zoo test carries the ``zoo`` marker.  The default run (``pytest``, ``make test``) runs only the
CI subset (``App.ci``: one app per finding kind and two healthy ones); ``-m zoo`` or
``CHOKEPOINT_ZOO=all`` runs the whole zoo (``make accuracy``).
"""

from __future__ import annotations

import os

import pytest

from tests.zoo.apps_table import APPS_BY_NAME

ALL = os.environ.get("CHOKEPOINT_ZOO") == "all"


def _whole_zoo(config) -> bool:
    return ALL or "zoo" in (config.getoption("markexpr") or "")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        if "tests/zoo/" not in str(item.fspath).replace(os.sep, "/"):
            keep.append(item)
            continue
        item.add_marker(pytest.mark.zoo)
        app = getattr(item, "callspec", None) and item.callspec.params.get("app")
        if app is None or _whole_zoo(config) or APPS_BY_NAME[app].ci:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def zoo(request, artifacts_dir, tmp_path_factory):
    """The zoo run of the apps this session selected (started on first use, in the background)."""
    from tests.zoo.zoo import Zoo

    names = [item.callspec.params["app"] for item in request.session.items if hasattr(item, "callspec") and "app" in item.callspec.params]
    apps = [APPS_BY_NAME[n] for n in dict.fromkeys(names)]
    needed = {need for app in apps for need in app.needs}
    services = {name: request.getfixturevalue(name) for name in ("postgres", "mariadb", "redis", "kafka") if name in needed}
    zoo = Zoo(services, artifacts_dir, tmp_path_factory.mktemp("zoo-collector"), measure_clear=_whole_zoo(request.config))
    zoo.start(apps)
    yield zoo
    zoo.shutdown()
    from tests.zoo.report import write_report

    results = {n: f.result() for n, f in zoo.futures.items() if f.done() and f.exception() is None}
    write_report(results, zoo, whole=_whole_zoo(request.config) and len(results) == len(APPS_BY_NAME))
