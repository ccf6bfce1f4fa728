#!/usr/bin/env python3
"""The library matrix: the agent's integrations tested at several releases of each library.

Usage::

    python scripts/matrix.py                    # every library at every version in tests/matrix/versions.toml
    python scripts/matrix.py --ci               # every library at its oldest and newest version only
    python scripts/matrix.py --only sqlalchemy  # one library (repeatable)
    python scripts/matrix.py --write docs/MATRIX.md --jobs 2

For each (library, version) cell: a venv of its own under
``~/.cache/chokepoint/matrix/<library>-<version>`` (``CHOKEPOINT_CACHE`` overrides
``~/.cache/chokepoint``), made with ``python -m venv --without-pip`` and this interpreter's
``pip --python <venv> install --no-compile -c constraints.txt`` of ``./instrument`` (editable), the library at that version, the upstream instrumentation
packages the agent uses for it and what the test's app needs (versions.toml).  The venv is
reused while its inputs are unchanged (Python, the requirements, ``constraints.txt``,
``instrument/pyproject.toml``); otherwise rebuilt.  Then ``pytest tests/matrix/<test>`` runs in
it against real services (``scripts/devservices.py`` through the ``tests/conftest.py``
fixtures).  Prints a table library x version -> pass/fail (and writes it with ``--write``);
exits non-zero when a cell fails.  A failing cell's output is kept in
``<venv>/matrix-last.log``.  ``--jobs`` cells are built and run at once (default 2).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSIONS = REPO / "tests" / "matrix" / "versions.toml"
CONSTRAINTS = REPO / "constraints.txt"
INSTRUMENT = REPO / "instrument"
INSTALL_TIMEOUT_S = 900
TEST_TIMEOUT_S = 600


@dataclass
class Cell:
    library: str
    version: str
    requirements: list[str]
    test: str
    status: str = "not run"
    seconds: float = 0.0
    detail: str = ""

    @property
    def venv(self) -> Path:
        root = Path(os.environ.get("CHOKEPOINT_CACHE", Path.home() / ".cache" / "chokepoint"))
        return root / "matrix" / f"{self.library}-{self.version}"


def load_cells(ci: bool, only: list[str]) -> list[Cell]:
    table = tomllib.loads(VERSIONS.read_text())
    unknown = set(only) - set(table)
    if unknown:
        raise SystemExit(f"matrix: no such library in {VERSIONS.name}: {', '.join(sorted(unknown))}")
    cells = []
    for library, spec in table.items():
        if only and library not in only:
            continue
        versions = spec["versions"]
        if ci:
            versions = list(dict.fromkeys([versions[0], versions[-1]]))
        for version in versions:
            requirements = [
                spec["requirement"].format(version=version),
                *spec.get("pins", {}).get(version, []),
                *spec.get("with", []),
                *(f"opentelemetry-instrumentation-{name}" for name in spec.get("instrumentations", [])),
                "pytest",
            ]
            cells.append(Cell(library, version, requirements, spec["test"]))
    return cells


def inputs_key(cell: Cell) -> str:
    digest = hashlib.sha256()
    for part in (sys.version, str(INSTRUMENT), *cell.requirements, CONSTRAINTS.read_text(), (INSTRUMENT / "pyproject.toml").read_text()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def ensure_venv(cell: Cell) -> None:
    """Build the cell's venv unless one with the same inputs is there."""
    venv, key = cell.venv, inputs_key(cell)
    stamp = venv / "matrix-inputs"
    if stamp.is_file() and stamp.read_text() == key and (venv / "bin" / "python").exists():
        return
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], INSTALL_TIMEOUT_S)
    # this interpreter's pip installs into the venv (no pip bootstrap per venv); no .pyc up front
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--disable-pip-version-check", "--no-compile"]
    run([*pip, "-c", str(CONSTRAINTS), "-e", str(INSTRUMENT), *cell.requirements], INSTALL_TIMEOUT_S)
    stamp.write_text(key)


def run(argv: list[str], timeout_s: float, env: dict | None = None) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        raise CellFailed(f"{' '.join(argv[:6])} ... exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return done.stdout


class CellFailed(Exception):
    pass


def run_cell(cell: Cell) -> Cell:
    started = time.monotonic()
    env = {**os.environ, "CHOKEPOINT_MATRIX_LIBRARY": cell.library, "CHOKEPOINT_MATRIX_VERSION": cell.version}
    env.pop("VIRTUAL_ENV", None)
    try:
        stage = "install"
        ensure_venv(cell)
        stage = "test"
        python = str(cell.venv / "bin" / "python")
        output = run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"tests/matrix/{cell.test}"], TEST_TIMEOUT_S, env)
        cell.status, cell.detail = "pass", output.strip().splitlines()[-1] if output.strip() else ""
    except (CellFailed, subprocess.TimeoutExpired, OSError) as exc:
        cell.status = f"FAIL ({stage})"
        cell.detail = str(exc)
        if cell.venv.is_dir():
            (cell.venv / "matrix-last.log").write_text(cell.detail)
    cell.seconds = time.monotonic() - started
    print(f"matrix: {cell.library} {cell.version}: {cell.status} ({cell.seconds:.0f} s)", flush=True)
    return cell


def table(cells: list[Cell]) -> str:
    libraries = list(dict.fromkeys(c.library for c in cells))
    lines = ["| library | version | result |", "|---|---|---|"]
    for library in libraries:
        for cell in (c for c in cells if c.library == library):
            lines.append(f"| {library} | {cell.version} | {cell.status} |")
    return "\n".join(lines)


MATRIX_DOC = """# The library matrix

Each instrumented library at its oldest supported, middle and newest release, each in a venv
of its own, against real services: the same spans, metrics and request breakdown
(`tests/matrix/`, versions in `tests/matrix/versions.toml`).  Written by `make matrix`
(`python scripts/matrix.py --write docs/MATRIX.md`); `make matrix-ci` runs the oldest and
newest of each.

{table}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ci", action="store_true", help="oldest and newest version of each library only")
    parser.add_argument("--only", action="append", default=[], help="one library (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="cells built and run at once")
    parser.add_argument("--write", type=Path, help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)
    cells = load_cells(args.ci, args.only)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        cells = list(pool.map(run_cell, cells))
    print(f"\n{table(cells)}\n\nmatrix: {sum(c.status == 'pass' for c in cells)}/{len(cells)} cells passed in {time.monotonic() - started:.0f} s")
    for cell in cells:
        if cell.status != "pass":
            print(f"\n== {cell.library} {cell.version}: {cell.status}\n{cell.detail[-3000:]}")
    if args.write:
        args.write.write_text(MATRIX_DOC.format(table=table(cells)))
    return 0 if all(c.status == "pass" for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
