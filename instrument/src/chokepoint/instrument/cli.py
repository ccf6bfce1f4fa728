"""``chokepoint-instrument CMD...`` — run any Python command instrumented.

Usage::

    chokepoint-instrument python app.py
    chokepoint-instrument uvicorn app:app --port 8000
    chokepoint-instrument gunicorn -w 2 app:app

Configuration comes from the environment (``OTEL_*`` and ``CHOKEPOINT_*``; see
``chokepoint.instrument.config``).  The command is run by ``opentelemetry-instrument``
with chokepoint's distro and configurator selected (``OTEL_PYTHON_DISTRO`` /
``OTEL_PYTHON_CONFIGURATOR=chokepoint``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
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
