"""Proves that each chokepoint distribution installs where users are, and the agent works at its oldest OpenTelemetry.

Usage::

    python scripts/check_install.py                 # every check (make install-check)
    python scripts/check_install.py --only plain,app-flask
    python scripts/check_install.py --only semconv,collector,dashboards
    CHOKEPOINT_CACHE=/tmp/c python scripts/check_install.py

Each check builds a fresh venv under ``$CHOKEPOINT_CACHE/install-check`` (default
``~/.cache/chokepoint/install-check``); pip's download cache lives there too, so a second
run downloads nothing.  No check but ``oldest`` uses a constraints file: each installs as a
user would.  The repository's wheels are built first (``chokepoint-semconv`` and the part
checked) and installed together, so pip takes ``chokepoint-semconv`` from this tree, never
from an index.

- ``semconv``: the names wheel alone; it imports and installs nothing else.
- ``plain``: the wheel alone (no extras) into an empty venv; the agent imports, and
  ``chokepoint-instrument --plan python -c pass`` runs.
- ``app-flask``: the wheel with ``[flask,sqlalchemy,requests]`` next to an app's own pins
  (``APP_PINS_FLASK``: an older SQLAlchemy, Flask, requests and typing-extensions); the pins
  must survive unchanged.
- ``app-starlette``: the wheel (no extras: chokepoint's own ASGI and httpx integrations need
  no upstream package) next to ``starlette`` 1.x and an older ``httpx``.
- ``oldest``: the repo's ``instrument[test]`` at the oldest supported OpenTelemetry set
  (``constraints-oldest.txt``), then the agent's unit tests (``tests/instrument -m unit``,
  less ``tests/instrument/probes``: the probes use the public metrics API only) with that
  venv's Python.
- ``collector``: the collector wheel; ``chokepoint --help`` runs, its modules import, and
  neither the agent (``chokepoint-instrument``) nor any instrumentation or SDK package is
  installed with it.
- ``dashboards``: the dashboards wheel (with the collector it still reads the REST API
  through, see ``dashboards/pyproject.toml``); ``chokepoint rules`` prints the Prometheus
  rules, and the agent is not installed.

Exit status 0 when every check passed; each check prints one line with its time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PINS_FLASK = ("SQLAlchemy==2.0.23", "Flask==2.3.3", "requests==2.31.0", "typing-extensions==4.7.1")
APP_PINS_STARLETTE = ("starlette==1.0.0", "httpx==0.27.2")
CHECKS = ("semconv", "plain", "app-flask", "app-starlette", "oldest", "collector", "dashboards")
AGENT_ONLY = ("chokepoint-instrument", "opentelemetry-sdk", "opentelemetry-instrumentation")  # never with the collector
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


def cache_root() -> Path:
    base = Path(os.environ.get("CHOKEPOINT_CACHE") or Path.home() / ".cache" / "chokepoint")
    return base / "install-check"


def run(*command, env=None, cwd=None) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise CheckFailed(f"{' '.join(str(c) for c in command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout


class CheckFailed(Exception):
    pass


def fresh_venv(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def build_wheels(cache: Path, env) -> dict[str, Path]:
    """``{"semconv": wheel, "instrument": wheel, ...}``: this tree's four distributions, built without dependencies."""
    out = cache / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    parts = ("semconv", "instrument", "collector", "dashboards")
    run(sys.executable, *PIP, "wheel", "-q", "--no-deps", *(ROOT / part for part in parts), "-w", out, env=env)
    return {part: next(out.glob(f"chokepoint_{part}-*.whl")) for part in parts}


def installed(python: Path, env) -> dict[str, str]:
    lines = run(python, *PIP, "list", "--format=freeze", env=env).splitlines()
    return {canonical(name): version for name, _, version in (line.partition("==") for line in lines)}


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def agent_runs(python: Path, env) -> str:
    """The agent imports and its plan prints, as a user's first command would."""
    run(python, "-c", "import chokepoint.instrument.agent, chokepoint.instrument.distro, chokepoint.instrument.cli", env=env)
    cli = python.parent / "chokepoint-instrument"
    plan = run(cli, "--plan", python, "-c", "pass", env=env)
    if "library" not in plan:
        raise CheckFailed(f"chokepoint-instrument --plan printed no plan:\n{plan}")
    return plan


def check_plain(cache: Path, wheels: dict[str, Path], env) -> str:
    python = fresh_venv(cache / "venv-plain")
    run(python, *PIP, "install", "-q", wheels["semconv"], wheels["instrument"], env=env)
    agent_runs(python, env)
    versions = installed(python, env)
    return f"opentelemetry-sdk {versions.get('opentelemetry-sdk')}"


def check_app(cache: Path, wheels: dict[str, Path], env, name: str, extras: str, pins: tuple[str, ...]) -> str:
    python = fresh_venv(cache / f"venv-{name}")
    run(python, *PIP, "install", "-q", *pins, env=env)
    wheel = wheels["instrument"]
    run(python, *PIP, "install", "-q", wheels["semconv"], f"{wheel}[{extras}]" if extras else wheel, *pins, env=env)  # not "name[extras] @ URL"
    versions = installed(python, env)
    for pin in pins:
        package, _, version = pin.partition("==")
        if versions.get(canonical(package)) != version:
            raise CheckFailed(f"{package} is {versions.get(canonical(package))} after installing the agent, not the app's {version}")
    run(python, *PIP, "check", env=env)
    agent_runs(python, env)
    return f"{' '.join(pins)}; opentelemetry-sdk {versions.get('opentelemetry-sdk')}"


def check_oldest(cache: Path, env) -> str:
    python = fresh_venv(cache / "venv-oldest")
    run(python, *PIP, "install", "-q", "-c", ROOT / "constraints-oldest.txt", "-e", ROOT / "semconv", "-e", f"{ROOT / 'instrument'}[test]", env=env)
    sdk = installed(python, env).get("opentelemetry-sdk")
    tests = ("tests/instrument", "--ignore=tests/instrument/probes", "-m", "unit", "-q", "-p", "no:cacheprovider")
    tail = run(python, "-m", "pytest", *tests, env=env, cwd=ROOT).strip().splitlines()[-1]
    return f"opentelemetry-sdk {sdk}: {tail}"


def without_agent(python: Path, env) -> dict[str, str]:
    """The venv's packages; :class:`CheckFailed` when the agent or any of its OpenTelemetry packages came along."""
    versions = installed(python, env)
    came = sorted(name for name in versions if name.startswith(AGENT_ONLY))
    if came:
        raise CheckFailed(f"installed with it, though only the agent needs them: {', '.join(came)}")
    return versions


def check_semconv(cache: Path, wheels: dict[str, Path], env) -> str:
    python = fresh_venv(cache / "venv-semconv")
    run(python, *PIP, "install", "-q", wheels["semconv"], env=env)
    run(python, "-c", "import chokepoint.semconv.signals, chokepoint.semconv.aliases, chokepoint.semconv.catalog, chokepoint.semconv.rest", env=env)
    others = sorted(set(installed(python, env)) - {"chokepoint-semconv", "pip", "setuptools", "wheel"})
    if others:
        raise CheckFailed(f"chokepoint-semconv installed more than itself: {', '.join(others)}")
    return "standard library only"


def check_collector(cache: Path, wheels: dict[str, Path], env) -> str:
    python = fresh_venv(cache / "venv-collector")
    run(python, *PIP, "install", "-q", wheels["semconv"], wheels["collector"], env=env)
    run(python, *PIP, "check", env=env)
    modules = "chokepoint.collector.cli, chokepoint.collector.service, chokepoint.collector.analysis, chokepoint.collector.report"
    run(python, "-c", f"import {modules}", env=env)
    if "serve" not in run(python.parent / "chokepoint", "--help", env=env):
        raise CheckFailed("chokepoint --help does not list serve")
    return f"{len(without_agent(python, env))} packages, no agent"


def check_dashboards(cache: Path, wheels: dict[str, Path], env) -> str:
    python = fresh_venv(cache / "venv-dashboards")
    run(python, *PIP, "install", "-q", wheels["semconv"], wheels["collector"], wheels["dashboards"], env=env)
    run(python, *PIP, "check", env=env)
    rules = run(python.parent / "chokepoint", "rules", env=env)
    if "chokepoint_" not in rules or "alert:" not in rules:
        raise CheckFailed(f"chokepoint rules printed no rules:\n{rules[:2000]}")
    return f"{len(without_agent(python, env))} packages, no agent"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated checks ({', '.join(CHECKS)})")
    args = parser.parse_args(argv)
    wanted = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CHECKS))
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PIP_CACHE_DIR"] = str(cache / "pip")
    started = time.monotonic()
    failed = 0
    wheels = None
    for check in wanted:
        t0 = time.monotonic()
        try:
            if check != "oldest" and wheels is None:
                wheels = build_wheels(cache, env)
            if check == "semconv":
                detail = check_semconv(cache, wheels, env)
            elif check == "plain":
                detail = check_plain(cache, wheels, env)
            elif check == "app-flask":
                detail = check_app(cache, wheels, env, check, "flask,sqlalchemy,requests", APP_PINS_FLASK)
            elif check == "app-starlette":
                detail = check_app(cache, wheels, env, check, "", APP_PINS_STARLETTE)
            elif check == "collector":
                detail = check_collector(cache, wheels, env)
            elif check == "dashboards":
                detail = check_dashboards(cache, wheels, env)
            else:
                detail = check_oldest(cache, env)
            print(f"install-check {check}: ok in {time.monotonic() - t0:.0f} s ({detail})", flush=True)
        except CheckFailed as problem:
            failed += 1
            print(f"install-check {check}: FAILED in {time.monotonic() - t0:.0f} s\n{problem}", flush=True)
    print(f"install-check: {len(wanted) - failed} of {len(wanted)} checks ok ({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
