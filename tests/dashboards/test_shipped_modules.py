"""The shipped dashboards package reads a collector and never stands in for one."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import chokepoint.dashboards

STAND_IN = re.compile(r"fake|demo|synthetic|stub|mock", re.IGNORECASE)


def shipped_modules() -> dict[str, Path]:
    """Dotted name → source file of every module of ``chokepoint.dashboards``."""
    root = Path(chokepoint.dashboards.__file__).parent
    out = {}
    for info in pkgutil.walk_packages([str(root)], prefix="chokepoint.dashboards."):
        parts = info.name.split(".")[2:]
        path = root.joinpath(*parts)
        out[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return out


def test_no_module_is_a_fake_or_demo_collector_api():
    modules = shipped_modules()
    assert "chokepoint.dashboards.app" in modules and "chokepoint.dashboards.pages.overview" in modules  # the walk sees the package
    assert [name for name in modules if STAND_IN.search(name.rsplit(".", 1)[1])] == []


def test_no_module_answers_http_requests_of_its_own():
    """The dashboard serves through Dash (Flask); a ``BaseHTTPRequestHandler`` would be a second REST implementation."""
    handlers = [name for name, path in shipped_modules().items() if re.search(r"BaseHTTPRequestHandler|def do_GET", path.read_text())]
    assert handlers == []
