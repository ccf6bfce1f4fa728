"""The collector does not import the layer above it: the dashboards plug in through entry points."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import chokepoint.collector

COLLECTOR_SRC = Path(chokepoint.collector.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_collector_module_imports_the_dashboards():
    offenders = {
        str(path.relative_to(COLLECTOR_SRC)): sorted(m for m in imported_modules(path) if m.startswith("chokepoint.dashboards"))
        for path in COLLECTOR_SRC.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_dashboard_plugs_into_serve_through_its_entry_point():
    from chokepoint.collector.serve import SERVE_PLUGINS_GROUP
    from chokepoint.dashboards.app import start_dashboard

    (dashboard,) = [ep for ep in entry_points(group=SERVE_PLUGINS_GROUP) if ep.name == "dashboard"]
    assert dashboard.load() is start_dashboard
