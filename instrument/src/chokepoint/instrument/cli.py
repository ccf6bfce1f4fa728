"""``chokepoint-instrument CMD...`` — run any Python command instrumented.

Usage::

    chokepoint-instrument python app.py
    chokepoint-instrument uvicorn app:app --port 8000
    chokepoint-instrument gunicorn -w 2 app:app
    chokepoint-instrument --plan python app.py     # print the plan (below) and exit
    chokepoint-instrument bootstrap [--dry-run]    # install upstream instrumentations

``--plan``: one line per installed library — library, version, path (``chokepoint``:
chokepoint's own integration, ``upstream``: the OpenTelemetry instrumentor, ``off``) and
why — as the agent would decide for this environment and this interpreter's packages
(:mod:`chokepoint.instrument.plan`); nothing is run.

``bootstrap``: installs, with this interpreter's pip, the upstream
``opentelemetry-instrumentation-<library>`` packages for the libraries present that lack
one, at the installed ``opentelemetry-instrumentation`` version (as ``opentelemetry-bootstrap``
does); ``--dry-run`` prints the pip command instead.  The same packages come as extras:
``pip install 'chokepoint-instrument[flask,sqlalchemy]'`` (``[all]``: every one).

Configuration comes from the environment (``OTEL_*`` and ``CHOKEPOINT_*``; see
``chokepoint.instrument.config``).  The command is run by ``opentelemetry-instrument``
with chokepoint's distro and configurator selected (``OTEL_PYTHON_DISTRO`` /
``OTEL_PYTHON_CONFIGURATOR=chokepoint``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    if args[0] == "--plan":
        return print_plan(args[1:])
    if args[0] == "bootstrap":
        return bootstrap(dry_run="--dry-run" in args[1:])
    # The OpenTelemetry launcher does the interpreter-level work (sitecustomize bootstrap);
    # chokepoint registers as its distro and configurator, so its defaults apply.
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    launcher = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")
    if launcher is None:
        print("chokepoint-instrument: opentelemetry-instrument not found; reinstall chokepoint-instrument", file=sys.stderr)
        return 1
    # Another installed distro/configurator must not win the entry-point lottery.
    os.environ.setdefault("OTEL_PYTHON_DISTRO", "chokepoint")
    os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", "chokepoint")
    os.execv(launcher, [launcher, *args])
    return 0  # pragma: no cover - execv does not return


def print_plan(command: list[str]) -> int:
    """Print the plan the agent would follow for ``command`` in this environment."""
    from chokepoint.instrument.config import AgentConfig
    from chokepoint.instrument.distro import apply_environment_defaults
    from chokepoint.instrument.plan import make_plan

    env = dict(os.environ)
    apply_environment_defaults(env)
    config = AgentConfig.from_env(env)
    for problem in config.problems:
        print(f"chokepoint-instrument: {problem}", file=sys.stderr)
    print(f"chokepoint plan for: {shlex.join(command) or '(no command)'}")
    print(make_plan(config).render())
    return 0


def bootstrap_packages() -> list[str]:
    """The upstream instrumentation packages to install for the libraries present (pinned)."""
    from chokepoint.instrument.plan import LIBRARIES, installed_version, upstream_instrumentors

    try:
        pin = version("opentelemetry-instrumentation")
    except PackageNotFoundError:
        pin = None
    present = upstream_instrumentors()
    wanted = []
    for row in LIBRARIES:
        if row.off_because or row.name in present or installed_version(row) is None:
            continue
        wanted.append(f"{row.instrumentation}=={pin}" if pin else row.instrumentation)
    return wanted


def bootstrap(dry_run: bool = False) -> int:
    packages = bootstrap_packages()
    if not packages:
        print("chokepoint-instrument bootstrap: every library present has its instrumentation")
        return 0
    command = [sys.executable, "-m", "pip", "install", *packages]
    if dry_run:
        print(shlex.join(command))
        return 0
    return subprocess.call(command)
