"""The ``ddtrace`` variant's own virtual environment, built on first use.

    from ddtrace_venv import ensure_venv
    bin_dir = ensure_venv()        # bench/overhead/.cache/ddtrace-venv/bin (gitignored)

ddtrace must not enter the project's venv, so the benchmark builds a venv of its own under
``bench/overhead/.cache/`` with the newest ``ddtrace`` on PyPI and the bench app's
libraries (FastAPI, Starlette, uvicorn, SQLAlchemy, psycopg, httpx, pydantic, anyio) at
exactly the versions of the running interpreter's environment, so both variants serve the
same app on the same libraries.  A marker file records what was installed; delete the
directory to rebuild (for a newer ddtrace).  ``python bench/overhead/ddtrace_venv.py``
builds it and prints the versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".cache" / "ddtrace-venv"
MARKER = VENV / "chokepoint-bench.json"
APP_LIBRARIES = ("fastapi", "starlette", "uvicorn", "SQLAlchemy", "psycopg", "psycopg-binary", "httpx", "httpcore", "h11", "pydantic", "anyio")


def pins() -> list[str]:
    """The bench app's libraries at this environment's versions (those installed here)."""
    out = []
    for name in APP_LIBRARIES:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def ensure_venv() -> Path:
    """The venv's ``bin`` directory, building the venv first if needed."""
    wanted = pins()
    if MARKER.exists() and json.loads(MARKER.read_text()).get("pins") == wanted:
        return VENV / "bin"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "ddtrace", *wanted], check=True)
    MARKER.write_text(json.dumps({"pins": wanted, "ddtrace": installed_ddtrace()}, indent=2))
    return VENV / "bin"


def installed_ddtrace() -> str:
    """The ddtrace version in the venv (``""`` when it is not built)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return ""
    result = subprocess.run([str(python), "-c", "import ddtrace; print(ddtrace.__version__)"], capture_output=True, text=True)
    return result.stdout.strip()


if __name__ == "__main__":
    print(ensure_venv())
    print(MARKER.read_text())
