"""``chokepoint-instrument CMD...`` — run any Python command instrumented.

Usage::

    chokepoint-instrument python app.py
    chokepoint-instrument uvicorn app:app --port 8000
"""

from __future__ import annotations

import os
import shutil
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    # The OpenTelemetry launcher does the interpreter-level work (sitecustomize bootstrap);
    # chokepoint registers as its distro and configurator, so its defaults apply.
    launcher = shutil.which("opentelemetry-instrument")
    if launcher is None:
        print("chokepoint-instrument: opentelemetry-instrument not found; reinstall chokepoint-instrument", file=sys.stderr)
        return 1
    os.execv(launcher, [launcher, *args])
    return 0  # pragma: no cover - execv does not return
