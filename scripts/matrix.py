#!/usr/bin/env python3
"""The library matrix: the agent's integrations tested at several releases of each library.

Usage::

    python scripts/matrix.py                    # every library at every version in tests/matrix/versions.toml
    python scripts/matrix.py --ci               # every library at its oldest and newest version only
    python scripts/matrix.py --only sqlalchemy  # one library (repeatable)
    python scripts/matrix.py --write docs/MATRIX.md --jobs 2

For each (library, version) cell: a venv of its own under
``~/.cache/chokepoint/matrix/<library>-<version>`` (``CHOKEPOINT_MATRIX_CACHE`` overrides
``~/.cache/chokepoint/matrix``, ``CHOKEPOINT_CACHE`` the ``~/.cache/chokepoint`` root) holding the library at that version and whatever it pulls in,
layered over one shared base venv (``.../matrix/base``: ``./semconv`` and ``./instrument`` editable, every
upstream instrumentation package the table names, pytest, FastAPI and uvicorn for the test
apps).  The layer is a ``.pth`` line adding the base's site-packages *after* the cell's, so
the cell's own copy of anything wins (a cell's older Starlette over the base's); pip, run
for the cell's interpreter, sees the base's packages as installed and leaves them alone.
Venvs are made with ``python -m venv --without-pip`` and this interpreter's
``pip --python <venv> install --no-compile -c constraints.txt`` (the OpenTelemetry pins).
Each venv is reused while its inputs are unchanged (Python, its requirements,
``constraints.txt``, ``instrument/pyproject.toml``, ``semconv/pyproject.toml``, the base's inputs), otherwise rebuilt.
Then ``pytest tests/matrix/<test>`` runs in the cell against real services
(``scripts/devservices.py`` through the ``tests/conftest.py`` fixtures); each test module
first checks that the version it imports is the cell's.  Prints a table library x version
-> pass/fail (and writes it with ``--write``, after every cell); exits non-zero when a cell
fails.  One run at a time per cache directory (a lock file; a second run waits).  A failing
cell's output is kept in ``<venv>/matrix-last.log``.  ``--jobs`` cells are built and run
at once (default 2; pip's download cache is safe to share).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSIONS = REPO / "tests" / "matrix" / "versions.toml"
CONSTRAINTS = REPO / "constraints.txt"
INSTRUMENT = REPO / "instrument"
SEMCONV = REPO / "semconv"  # the agent's names (chokepoint-semconv), installed from this tree with it
INSTALL_TIMEOUT_S = 900
BASE_REQUIREMENTS = ["pytest", "fastapi", "uvicorn"]
TEST_TIMEOUT_S = 600


def cache_root() -> Path:
    default = Path(os.environ.get("CHOKEPOINT_CACHE", Path.home() / ".cache" / "chokepoint")) / "matrix"
    return Path(os.environ.get("CHOKEPOINT_MATRIX_CACHE", default))


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
        return cache_root() / f"{self.library}-{self.version}"


def load_table() -> dict:
    return tomllib.loads(VERSIONS.read_text())


def load_cells(table: dict, ci: bool, only: list[str]) -> list[Cell]:
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
            requirements = [spec["requirement"].format(version=version), *spec.get("pins", {}).get(version, []), *spec.get("with", [])]
            cells.append(Cell(library, version, requirements, spec["test"]))
    return cells


def base_requirements(table: dict) -> list[str]:
    """What every cell shares: the test runner, the apps' web stack and every upstream
    instrumentation the table names (``./instrument`` is installed with them)."""
    names = sorted({name for spec in table.values() for name in spec.get("instrumentations", [])})
    return [*BASE_REQUIREMENTS, *(f"opentelemetry-instrumentation-{name}" for name in names)]


def key_of(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in (
        sys.version,
        str(INSTRUMENT),
        CONSTRAINTS.read_text(),
        (INSTRUMENT / "pyproject.toml").read_text(),
        (SEMCONV / "pyproject.toml").read_text(),
        *parts,
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def fresh(venv: Path, key: str) -> bool:
    stamp = venv / "matrix-inputs"
    return stamp.is_file() and stamp.read_text() == key and (venv / "bin" / "python").exists()


def pip_install(venv: Path, requirements: list[str]) -> None:
    # this interpreter's pip installs into the venv (no pip bootstrap per venv); no .pyc up front
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--disable-pip-version-check", "--no-compile"]
    run([*pip, "-c", str(CONSTRAINTS), *requirements], INSTALL_TIMEOUT_S)


def new_venv(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], INSTALL_TIMEOUT_S)


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def ensure_base(table: dict) -> tuple[Path, str]:
    """The shared layer (``<cache>/base``): ``./semconv`` and ``./instrument`` (editable) and :func:`base_requirements`."""
    venv, requirements = cache_root() / "base", base_requirements(table)
    key = key_of("base", *requirements)
    if not fresh(venv, key):
        new_venv(venv)
        pip_install(venv, ["-e", str(SEMCONV), "-e", str(INSTRUMENT), *requirements])
        (venv / "matrix-inputs").write_text(key)
    return venv, key


def ensure_venv(cell: Cell, base: Path, base_key: str) -> None:
    """The cell's venv: the base layer after its own site-packages (a ``.pth`` line), the
    base's scripts pointed at the cell's interpreter, then the library at the cell's
    version installed into the cell itself (pip leaves the base's copy alone and the cell's
    shadows it).  Reused while its inputs and the base are unchanged."""
    venv = cell.venv
    key = key_of(base_key, *cell.requirements)
    if fresh(venv, key):
        return
    new_venv(venv)
    (site_packages(venv) / "_matrix_base.pth").write_text(f"import site; site.addsitedir({str(site_packages(base))!r})\n")
    for script in (base / "bin").iterdir():
        target = venv / "bin" / script.name
        if script.is_file() and not target.exists():
            text = script.read_text(errors="replace")
            if text.startswith(f"#!{base}/bin/"):
                target.write_text(text.replace(f"#!{base}/bin/", f"#!{venv}/bin/", 1))
                target.chmod(0o755)
    pip_install(venv, cell.requirements)
    (venv / "matrix-inputs").write_text(key)


def run(argv: list[str], timeout_s: float, env: dict | None = None) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        raise CellFailed(f"{' '.join(argv[:6])} ... exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return done.stdout


class CellFailed(Exception):
    pass


def run_cell(cell: Cell, base: Path, base_key: str) -> Cell:
    started = time.monotonic()
    env = {**os.environ, "CHOKEPOINT_MATRIX_LIBRARY": cell.library, "CHOKEPOINT_MATRIX_VERSION": cell.version}
    env.pop("VIRTUAL_ENV", None)
    try:
        stage = "install"
        ensure_venv(cell, base, base_key)
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


def markdown_table(cells: list[Cell]) -> str:
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
    table = load_table()
    cells = load_cells(table, args.ci, args.only)
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".lock", "w") as lock_file:  # one run at a time per cache: a rebuild would pull the base from under another
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"matrix: waiting for another matrix run on {cache_root()}", flush=True)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        return run_matrix(args, table, cells)


def run_matrix(args, table: dict, cells: list[Cell]) -> int:
    started = time.monotonic()
    try:
        base, base_key = ensure_base(table)
    except (CellFailed, subprocess.TimeoutExpired, OSError) as exc:
        print(f"matrix: the shared base venv could not be built:\n{exc}")
        return 1
    print(f"matrix: base venv ready ({time.monotonic() - started:.0f} s)", flush=True)
    lock = threading.Lock()

    def run_and_record(cell: Cell) -> Cell:
        run_cell(cell, base, base_key)
        if args.write:  # the table so far, so an interrupted run still leaves what it found
            with lock:
                args.write.write_text(MATRIX_DOC.format(table=markdown_table(cells)))
        return cell

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        cells = list(pool.map(run_and_record, cells))
    print(f"\n{markdown_table(cells)}\n\nmatrix: {sum(c.status == 'pass' for c in cells)}/{len(cells)} cells passed in {time.monotonic() - started:.0f} s")
    for cell in cells:
        if cell.status != "pass":
            print(f"\n== {cell.library} {cell.version}: {cell.status}\n{cell.detail[-3000:]}")
    if args.write:
        args.write.write_text(MATRIX_DOC.format(table=markdown_table(cells)))
    return 0 if all(c.status == "pass" for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
