"""Start the whole demo (payment + shop + fulfilment) as real processes, and stop it for sure.

For launchers (``make demo``), scenario tests and the integration tests::

    from shop.launch import ShopStack

    with ShopStack(db="postgresql://postgres@127.0.0.1:5432/shop", kafka="127.0.0.1:9092",
                   switches="slow_query", wrapper=["chokepoint-instrument"]) as stack:
        print(stack.shop_url, stack.payment_url, stack.fulfilment_url)
        stack.set_switches(retry_storm=True)   # on every process that owns the switch
        ...  # put load on stack.shop_url (shop.load.run_load)

or from a shell: ``python -m shop.launch --db ... --kafka ...`` (runs until Ctrl-C or SIGTERM,
then stops the three processes).

Fallback mode (``make demo`` where PostgreSQL or Java is missing): ``db`` may be a SQLite
file URL (``sqlite:////tmp/shop.sqlite``: an absolute path after ``sqlite:///``) and ``kafka``
``None`` (or ``""``/``"none"``)::

    with ShopStack(db="sqlite:////tmp/shop.sqlite", kafka=None) as stack:
        stack.mode                      # {"database": "sqlite", "kafka": False}

Without Kafka only payment and the shop run (``--kafka none``): no order events, no
fulfilment worker (``stack.processes`` has no ``"fulfilment"``), and
``set_switches(consumer_lag=...)`` raises :class:`SwitchUnavailable` saying why.

Each process runs in its own session (process group) with ``OTEL_SERVICE_NAME`` set to
``shop``, ``payment`` or ``fulfilment`` and ``SHOP_SWITCHES`` set to ``switches`` (each
keeps the switches it owns).  ``wrapper`` is put in front of each command (e.g.
``["chokepoint-instrument"]``; a bare name is looked up next to this Python first).  Ports are free loopback ports unless given.  Start order:
payment and shop together (the shop creates the schema, seed data and topic), then the
fulfilment worker (with Kafka only); ``start()`` returns when each printed its "ready"
line and the worker has its partitions, or raises :class:`LaunchError` with the log's first
error lines and its tail (everything already started is stopped).  A free port this stack chose
that someone took before its process bound it (:class:`PortTaken`) starts the stack again on a
new one, up to :data:`PORT_ATTEMPTS` times.  ``stop()`` sends SIGTERM to each process group (SIGKILL
after 15 s) and is idempotent.  Output of each process goes to ``log_dir/<name>.log``
(a new temp dir ``shop-logs-*`` when not given; kept after stop for reading).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from shop.db import backend_name
from shop.events import DEFAULT_TOPIC, kafka_enabled
from shop.switches import owner_of

READY_MARK = " ready http://"
#: What uvicorn logs when its port is bound by someone else.
PORT_TAKEN_MARK = "address already in use"
ERROR_MARK = re.compile(r"(Error|Exception)\b|^ERROR")
#: How often ``start()`` tries again on a fresh free port when one of its own was taken meanwhile.
PORT_ATTEMPTS = 3


class LaunchError(RuntimeError):
    """A demo process did not start; the message holds its exit code and log tail."""


class PortTaken(LaunchError):
    """A demo process could not bind its port ("address already in use")."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class SwitchUnavailable(ValueError):
    """A switch whose process does not run in this stack (``consumer_lag`` without Kafka)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolve_command(argv: Sequence[str]) -> list[str]:
    """Find a bare command name next to this Python first (the venv's ``bin``), then on PATH."""
    argv = list(argv)
    if argv and os.sep not in argv[0]:
        beside = Path(sys.executable).parent / argv[0]
        found = str(beside) if beside.exists() else shutil.which(argv[0])
        if found is None:
            raise LaunchError(f"command {argv[0]!r} not found next to {sys.executable} or on PATH")
        argv[0] = found
    return argv


class DemoProcess:
    """One ``python -m shop.<module>`` process: output to a log file, "ready" line awaited."""

    def __init__(self, name: str, module: str, args: Sequence[str], log_dir: Path, env: dict[str, str], wrapper: Sequence[str] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", module, *args],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ready_line(self) -> str | None:
        return next((line for line in self.lines if READY_MARK in line), None)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line.rstrip("\n"))
                if READY_MARK in line:
                    self._ready.set()

    def wait_ready(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=1)
                exited = self.proc.poll() is not None
                why = f"exited with code {self.proc.returncode}" if exited else f"not ready after {timeout_s:.0f}s"
                # the first error lines too: a traceback's cause can sit above the last 20 lines
                errors = [line for line in self.lines[:-20] if ERROR_MARK.search(line)][:5]
                shown = "\n    ".join([*errors, *(["..."] if errors else []), *self.lines[-20:]])
                message = f"{self.name} {why}; log {self.log_path}:\n    {shown}"
                if exited and any(PORT_TAKEN_MARK in line for line in self.lines):
                    raise PortTaken(self.name, message)
                raise LaunchError(message)
        return self.ready_line or ""

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)


class ShopStack:
    """payment + shop + fulfilment on free ports; a context manager."""

    def __init__(
        self,
        db: str,
        kafka: str | None,
        *,
        switches: str = "",
        topic: str = DEFAULT_TOPIC,
        wrapper: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        ports: dict[str, int] | None = None,
        shop_args: Sequence[str] = (),
        payment_args: Sequence[str] = (),
        fulfilment_args: Sequence[str] = (),
        ready_timeout_s: float = 90.0,
    ) -> None:
        self.db, self.kafka, self.switches, self.topic = db, kafka, switches, topic
        self.kafka_enabled = kafka_enabled(kafka)
        self.wrapper = resolve_command(wrapper)
        self.base_env = dict(os.environ if env is None else env)
        self.log_dir: Path | None = Path(log_dir) if log_dir else None  # a fresh temp dir at start() when None
        ports = ports or {}
        self.ports = {name: ports.get(name) or free_port() for name in ("shop", "payment", "fulfilment")}
        self._chosen_ports = {name for name in self.ports if not ports.get(name)}  # free ports this stack picked itself
        self.extra = {"shop": list(shop_args), "payment": list(payment_args), "fulfilment": list(fulfilment_args)}
        self.ready_timeout_s = ready_timeout_s
        self.processes: dict[str, DemoProcess] = {}

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['shop']}"

    @property
    def payment_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['payment']}"

    @property
    def fulfilment_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['fulfilment']}"

    @property
    def mode(self) -> dict:
        """What the stack runs on: ``{"database": "postgresql" | "sqlite", "kafka": bool}``."""
        return {"database": backend_name(self.db), "kafka": self.kafka_enabled}

    @property
    def services(self) -> tuple[str, ...]:
        """The processes this stack runs (no fulfilment worker without Kafka)."""
        return ("payment", "shop", "fulfilment") if self.kafka_enabled else ("payment", "shop")

    def url_of(self, service: str) -> str:
        return {"shop": self.shop_url, "payment": self.payment_url, "fulfilment": self.fulfilment_url}[service]

    def set_switches(self, **switches: bool) -> dict[str, dict[str, bool]]:
        """Flip switches at runtime on every process that owns them; returns each touched process's state.

        ``stack.set_switches(retry_storm=True)`` turns on both halves (shop and payment).
        """
        per_service: dict[str, dict[str, bool]] = {}
        for name, on in switches.items():
            owners = owner_of(name)
            if not owners:
                raise ValueError(f"unknown switch {name!r}")
            if not set(owners) <= set(self.services):
                missing = ", ".join(sorted(set(owners) - set(self.services)))
                raise SwitchUnavailable(f"switch {name!r} is unavailable: it acts in the {missing} process, which does not run without Kafka")
            for service in owners:
                per_service.setdefault(service, {})[name] = on
        state = {}
        for service, updates in per_service.items():
            response = httpx.post(self.url_of(service) + "/admin/switches", json=updates, timeout=10)
            response.raise_for_status()
            state[service] = response.json()["switches"]
        return state

    def _spawn(self, name: str, module: str, args: list[str]) -> DemoProcess:
        env = {**self.base_env, "SHOP_SWITCHES": self.switches, "OTEL_SERVICE_NAME": name}
        assert self.log_dir is not None
        proc = DemoProcess(name, module, [*args, *self.extra[name]], self.log_dir, env, self.wrapper)
        self.processes[name] = proc
        return proc

    def start(self) -> ShopStack:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="shop-logs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        attempt = 1
        while True:
            try:
                self._start_processes()
                return self
            except PortTaken as exc:
                # a port free when chosen can be taken before the process binds it (the kernel gives the
                # same range to outgoing connections): start again on a new one, if this stack chose it
                self.stop()
                self.processes.clear()
                if exc.name not in self._chosen_ports or attempt >= PORT_ATTEMPTS:
                    raise
                attempt += 1
                self.ports[exc.name] = free_port()
            except BaseException:
                self.stop()
                raise

    def _start_processes(self) -> None:
        common = ["--db", self.db, "--kafka", self.kafka if self.kafka_enabled else "none", "--topic", self.topic]
        payment = self._spawn("payment", "shop.payment", ["--port", str(self.ports["payment"])])
        shop = self._spawn("shop", "shop.app", ["--port", str(self.ports["shop"]), *common, "--payment-url", self.payment_url])
        payment.wait_ready(self.ready_timeout_s)
        shop.wait_ready(self.ready_timeout_s)
        if self.kafka_enabled:
            self._spawn("fulfilment", "shop.fulfilment", ["--port", str(self.ports["fulfilment"]), *common]).wait_ready(self.ready_timeout_s)
            self._wait_partitions()

    def _wait_partitions(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while not httpx.get(self.fulfilment_url + "/health", timeout=5).json().get("partitions_assigned"):
            if time.monotonic() > deadline:
                raise LaunchError(f"fulfilment consumer got no partitions of {self.topic!r} within {self.ready_timeout_s:.0f}s")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()

    def __enter__(self) -> ShopStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.launch", description="run payment + shop + fulfilment until Ctrl-C")
    parser.add_argument("--db", default=os.environ.get("SHOP_DB_URL") or "postgresql://postgres@127.0.0.1:5432/shop", help="PostgreSQL DSN or sqlite:///FILE")
    parser.add_argument("--kafka", default=os.environ.get("SHOP_KAFKA_BOOTSTRAP") or "127.0.0.1:9092", help="Kafka bootstrap servers, or 'none'")
    parser.add_argument("--switches", default=os.environ.get("SHOP_SWITCHES", ""))
    parser.add_argument("--shop-port", type=int, default=0)
    parser.add_argument("--instrument", action="store_true", help="run each process under chokepoint-instrument")
    args = parser.parse_args(argv)
    wrapper = ["chokepoint-instrument"] if args.instrument else []
    try:
        with ShopStack(args.db, args.kafka, switches=args.switches, wrapper=wrapper, ports={"shop": args.shop_port}) as stack:
            for proc in stack.processes.values():
                print(proc.ready_line, flush=True)
            print(f"demo ready {stack.shop_url} (logs in {stack.log_dir}); Ctrl-C to stop", flush=True)
            stopping = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stopping.set())
            while not stopping.is_set() and all(p.proc.poll() is None for p in stack.processes.values()):
                stopping.wait(0.5)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
