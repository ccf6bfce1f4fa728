"""chokepoint-semconv stands alone, and the parts get their names from it, not from each other.

The collector's install must not pull in the agent (and its instrumentation packages) to
know a name; the shipped modules and the pyprojects are both checked.  ``make install-check``
proves the same on fresh venvs (scripts/check_install.py).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

import chokepoint.collector
import chokepoint.dashboards
import chokepoint.semconv
from chokepoint.semconv import aliases, catalog, rest, signals
from tests.collector.test_layering import imported_modules

REPO = Path(__file__).resolve().parents[2]
SEMCONV_SRC = Path(chokepoint.semconv.__file__).parent
COLLECTOR_SRC = Path(chokepoint.collector.__file__).parent
DASHBOARDS_SRC = Path(chokepoint.dashboards.__file__).parent
# What the dashboards still take from the collector (besides the `chokepoint` command their
# subcommands plug into): reading N collectors as one, the evidence formatter, the report's fetch.
DASHBOARDS_READ_THE_COLLECTOR_WITH = {"chokepoint.collector.remote", "chokepoint.collector.evidence", "chokepoint.collector.report"}


def dependencies(distribution: str) -> set[str]:
    project = tomllib.loads((REPO / distribution / "pyproject.toml").read_text())["project"]
    return {dep.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() for dep in project["dependencies"]}


def imports_where(src: Path, wanted) -> dict[str, list[str]]:
    """``{module file: [imported modules for which wanted(name)]}`` over ``src``, files with none left out."""
    found = {str(path.relative_to(src)): sorted(m for m in imported_modules(path) if wanted(m)) for path in src.rglob("*.py")}
    return {k: v for k, v in found.items() if v}


def test_semconv_imports_the_standard_library_only():
    assert imports_where(SEMCONV_SRC, lambda m: m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("chokepoint.semconv")) == {}
    assert dependencies("semconv") == set()


def test_no_collector_module_imports_the_agent():
    assert imports_where(COLLECTOR_SRC, lambda m: m.startswith("chokepoint.instrument")) == {}


def test_the_dashboards_take_names_from_semconv_and_only_the_reading_code_from_the_collector():
    used = imports_where(DASHBOARDS_SRC, lambda m: m.startswith(("chokepoint.collector", "chokepoint.instrument")) or m == "chokepoint")
    assert {m for modules in used.values() for m in modules} <= DASHBOARDS_READ_THE_COLLECTOR_WITH


@pytest.mark.parametrize("distribution", ["instrument", "collector", "dashboards"])
def test_each_part_depends_on_semconv_and_the_collector_not_on_the_agent(distribution):
    deps = dependencies(distribution)
    assert "chokepoint-semconv" in deps
    if distribution != "instrument":
        assert "chokepoint-instrument" not in deps


def test_the_old_import_paths_name_the_same_objects():
    from chokepoint.collector import catalog as collector_catalog
    from chokepoint.collector import semconv as collector_semconv
    from chokepoint.instrument import signals as agent_signals

    for name, value in vars(signals).items():
        if name.isupper():
            assert getattr(agent_signals, name) is value, name
    for name, value in vars(catalog).items():
        if name.isupper() or name in ("Metric", "Kind", "FindingKind"):
            assert getattr(collector_catalog, name) is value, name
    for name, value in vars(aliases).items():
        if name.endswith("_KEYS") or name == "first":
            assert getattr(collector_semconv, name) is value, name


def test_one_spelling_of_each_shared_vocabulary():
    assert catalog.BREAKER_STATES is signals.BREAKER_STATES
    assert len(aliases.SERVER_ADDRESS_KEYS) == len(set(aliases.SERVER_ADDRESS_KEYS))
    assert aliases.SERVER_ADDRESS_KEYS[0] == signals.ATTR_SERVER_ADDRESS
    from chokepoint.instrument import breakdown

    assert breakdown.SERVER_ADDRESS_KEYS is aliases.SERVER_ADDRESS_KEYS


def test_every_rest_resource_is_a_route_of_the_api():
    from chokepoint.collector.api import RestApi

    paths = {route.path for route in RestApi(store=None).routes()}
    assert {r.url_path for r in rest.RESOURCES.values()} <= paths
    assert paths - {r.url_path for r in rest.RESOURCES.values()} == {"/metrics"}
