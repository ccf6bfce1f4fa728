"""Real services for chokepoint's tests and demo, each on a free loopback port.

The integration and scenario tests (through the fixtures in ``tests/conftest.py``) and
``make demo`` start the real servers with this module; nothing is mocked and nothing is
left running: every service is a context manager whose ``stop()`` kills its process
group and removes its temporary directory.

Services
--------
``PostgresService``
    A throwaway cluster from Debian's PostgreSQL (``initdb`` + ``pg_ctl``) in a temp
    dir, ``fsync=off``, trust auth, listening on 127.0.0.1 only.  As root, the server
    runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
``KafkaService``
    The real Apache Kafka broker, single node in KRaft mode (broker + controller),
    started with ``java -cp`` from the jars that ``scripts/provision-kafka.sh`` resolved
    from Maven Central into ``$CHOKEPOINT_CACHE/kafka-VERSION``.
``RedisService``
    Debian's ``redis-server`` with no persistence (no RDB snapshots, no AOF), its
    working dir and unix socket in a temp dir, listening on 127.0.0.1 only.
``MariaDBService``
    A throwaway MariaDB server from Debian's ``mariadb-server``
    (``mariadb-install-db`` + ``mariadbd``) in a temp dir, ``--skip-grant-tables`` (any
    user, no password: loopback only), small InnoDB logs, no binlog, no
    performance_schema.  As root, the server runs as the ``mysql`` system user.
``PrometheusService``
    Debian's ``prometheus`` with a generated config scraping the given targets.
``chromium_path()``
    Debian's Chromium for headless browser tests.

Command line (used by ``make demo`` and for poking around)::

    python scripts/devservices.py up postgres kafka   # start, print URLs, wait for Ctrl-C
    python scripts/devservices.py up redis mariadb

Environment
-----------
``CHOKEPOINT_CACHE``  where provisioned artefacts live (default ``~/.cache/chokepoint``).
``CHOKEPOINT_KAFKA_VERSION``  Kafka release to run (default: the one in scripts/kafka/pom.xml).

A service that cannot be found or started raises ``ServiceUnavailable`` whose message
is one line naming what is missing and how to install it.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CHOKEPOINT_CACHE", Path.home() / ".cache" / "chokepoint"))
LOOPBACK = "127.0.0.1"


class ServiceUnavailable(RuntimeError):
    """A real service is missing or did not start; the message says how to fix it."""


#: Ports handed out by :func:`free_port` in this process (never twice).
_HANDED_OUT: set[int] = set()
#: The lowest port :func:`free_port` picks from (below it: well-known services' ports).
LOWEST_PORT = 20000


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for the local ends of outgoing connections (``ip_local_port_range``)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now, below the kernel's ephemeral range.

    A port from ``bind(0)`` comes from the ephemeral range, which the kernel also gives to
    the local end of every outgoing connection: between choosing it and a server binding
    it (seconds later, after a slow start-up), a client's connection to Kafka or
    PostgreSQL may hold it, and the server fails with "address already in use".  Ports
    below that range are never handed out that way, so a random one of them that binds now
    stays free unless someone binds it on purpose.  Never the same port twice per process.
    """
    low, _ = ephemeral_port_range()
    if low - LOWEST_PORT >= 1000:
        for _ in range(200):
            port = random.randrange(LOWEST_PORT, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a machine with a very wide ephemeral range
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    _HANDED_OUT.add(port)
    return port


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with code {proc.returncode} before opening port {port}{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServiceUnavailable(f"nothing listened on {LOOPBACK}:{port} after {timeout_s:.0f}s{_tail(log)}")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n  log tail:\n    " + "\n    ".join(text)


class _Service:
    """Shared lifecycle: a temp dir, one child process group, idempotent stop()."""

    name = "service"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"chokepoint-{self.name}-"))
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _spawn(self, argv: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        log.close()
        return self.proc

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """Directory holding Debian's ``initdb``/``pg_ctl`` (newest major version)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServiceUnavailable("PostgreSQL server not found: install it with `sudo apt-get install -y postgresql` (or run scripts/provision.sh)")


class PostgresService(_Service):
    """Throwaway PostgreSQL cluster on a free loopback port; ``dsn`` is ready after start()."""

    name = "postgres"

    def __init__(self, dbname: str = "chokepoint") -> None:
        super().__init__()
        self.dbname = dbname
        self.port = 0
        self.user = "postgres"
        self.bindir = postgres_bindir()
        self._run_as: list[str] = []

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{self.dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL for psycopg 3."""
        return f"postgresql+psycopg://{self.user}@{LOOPBACK}:{self.port}/{self.dbname}"

    def start(self) -> None:
        data = self.workdir / "data"
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServiceUnavailable("running as root but no `postgres` system user: install `postgresql` from apt") from exc
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self._run_as, str(self.bindir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        for attempt in range(3):
            self.port = free_port()
            opts = f"-c listen_addresses={LOOPBACK} -p {self.port} -c unix_socket_directories={self.workdir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            proc = subprocess.run(
                [*self._run_as, str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.log_path), "-o", opts, "-w", "-t", "30", "start"],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                break
            if attempt == 2 or "could not bind" not in self.log_path.read_text(errors="replace"):
                raise ServiceUnavailable(f"pg_ctl start failed: {proc.stderr.strip() or proc.stdout.strip()}{_tail(self.log_path)}")
        self._started = True
        created = subprocess.run(
            [*self._run_as, str(self.bindir / "createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user, self.dbname],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise ServiceUnavailable(f"createdb {self.dbname} failed: {created.stderr.strip()}")

    def stop(self) -> None:
        if getattr(self, "_started", False):
            self._started = False
            subprocess.run(
                [*self._run_as, str(self.bindir / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
        super().stop()


# --------------------------------------------------------------------------- Kafka


def kafka_version() -> str:
    env = os.environ.get("CHOKEPOINT_KAFKA_VERSION")
    if env:
        return env
    pom = (REPO / "scripts" / "kafka" / "pom.xml").read_text()
    return re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)


def kafka_classpath() -> str:
    """Classpath of the provisioned broker jars, or a clear error saying how to get them."""
    version = kafka_version()
    libdir = CACHE / f"kafka-{version}"
    if not (libdir / ".complete").exists():
        raise ServiceUnavailable(f"Kafka {version} jars not provisioned in {libdir}: run `scripts/provision-kafka.sh` (needs java 17+ and mvn)")
    if shutil.which("java") is None:
        raise ServiceUnavailable("java not found: install a JDK 17+ (`sudo apt-get install -y openjdk-17-jre-headless`)")
    return f"{libdir}/*"


class KafkaService(_Service):
    """Single-node KRaft Kafka broker on a free loopback port; ``bootstrap`` after start()."""

    name = "kafka"

    def __init__(self, heap: str = "512m") -> None:
        super().__init__()
        self.heap = heap
        self.port = 0
        self.controller_port = 0

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _write_config(self) -> Path:
        self.port, self.controller_port = free_port(), free_port()
        config = self.workdir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{LOOPBACK}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.workdir / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        return config

    def start(self) -> None:
        classpath = kafka_classpath()
        java = [
            "java",
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
        ]
        for attempt in range(3):
            config = self._write_config()
            cluster_id = "-"
            while cluster_id.startswith("-"):  # "-..." would parse as an option (1 in 64); Kafka's own ids skip these too
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), "--ignore-formatted"], capture_output=True, text=True
            )
            if fmt.returncode != 0:
                raise ServiceUnavailable(f"Kafka storage format failed: {fmt.stderr.strip()[-500:]}")
            self._spawn([*java, "kafka.Kafka", str(config)])
            try:
                wait_for_port(self.port, 60, self.proc, self.log_path)
                return
            except ServiceUnavailable:
                log = self.log_path.read_text(errors="replace")
                if attempt == 2 or "Address already in use" not in log:
                    raise
                _Service.stop(self)  # port clash: retry with fresh ports
                self.workdir.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- Redis


def _kill_child(service: _Service) -> None:
    """Kill a service's child that failed to start (its temp dir stays for the retry)."""
    proc, service.proc = service.proc, None
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class RedisService(_Service):
    """Throwaway ``redis-server`` on a free loopback port; ``url`` is ready after start()."""

    name = "redis"

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.socket_path = self.workdir / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True if the server answers ``PING`` on its TCP port."""
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        return False

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceUnavailable("redis-server not found: install it with `sudo apt-get install -y redis-server` (or run scripts/provision.sh)")
        for attempt in range(3):
            self.port = free_port()
            self._spawn(
                [
                    server,
                    "--port",
                    str(self.port),
                    "--bind",
                    LOOPBACK,
                    "--protected-mode",
                    "no",
                    "--unixsocket",
                    str(self.socket_path),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(self.workdir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--loglevel",
                    "warning",
                    "--logfile",
                    "",
                ]
            )
            try:
                wait_for_port(self.port, 15, self.proc, self.log_path)
                break
            except ServiceUnavailable:
                if attempt == 2 or "Address already in use" not in self.log_path.read_text(errors="replace"):
                    raise
                _kill_child(self)  # port clash: retry on another port
        deadline = time.monotonic() + 15
        while not self.ping():
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"redis-server did not answer PING after 15s{_tail(self.log_path)}")
            time.sleep(0.05)


# --------------------------------------------------------------------------- MariaDB


def mariadb_binaries() -> tuple[str, str, str]:
    """``(mariadb-install-db, mariadbd, mariadb)`` from Debian's mariadb-server."""
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or next((p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.access(p, os.X_OK)), None)
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not install_db or not server or not client:
        raise ServiceUnavailable("MariaDB server not found: install it with `sudo apt-get install -y mariadb-server` (or run scripts/provision.sh)")
    return install_db, server, client


class MariaDBService(_Service):
    """Throwaway MariaDB server on a free loopback port; ``database`` exists after start().

    ``host``/``port``/``user``/``database`` for a client (PyMySQL:
    ``pymysql.connect(host=svc.host, port=svc.port, user=svc.user, database=svc.database)``),
    ``url`` for SQLAlchemy (``mysql+pymysql://``).
    """

    name = "mariadb"
    host = LOOPBACK
    user = "root"

    def __init__(self, database: str = "chokepoint") -> None:
        super().__init__()
        self.database = database
        self.port = 0
        self.socket_path = self.workdir / "mariadb.sock"
        self._user_args: list[str] = []

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def _server_options(self) -> list[str]:
        return [
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-log-bin",
            "--skip-name-resolve",
        ]

    def start(self) -> None:
        install_db, server, client = mariadb_binaries()
        data = self.workdir / "data"
        if os.geteuid() == 0:  # mariadbd refuses to run as root
            try:
                pw = pwd.getpwnam("mysql")
            except KeyError as exc:
                raise ServiceUnavailable("running as root but no `mysql` system user: install `mariadb-server` from apt") from exc
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            self._user_args = ["--user=mysql"]
        init = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data}",
                *self._user_args,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._server_options(),
            ],
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise ServiceUnavailable(f"mariadb-install-db failed: {(init.stderr.strip() or init.stdout.strip())[-500:]}")
        for attempt in range(3):
            self.port = free_port()
            self._spawn(
                [
                    server,
                    "--no-defaults",
                    *self._user_args,
                    f"--datadir={data}",
                    f"--socket={self.socket_path}",
                    f"--port={self.port}",
                    f"--bind-address={LOOPBACK}",
                    "--skip-grant-tables",
                    "--performance-schema=off",
                    f"--pid-file={self.workdir / 'mariadb.pid'}",
                    *self._server_options(),
                ]
            )
            try:
                wait_for_port(self.port, 30, self.proc, self.log_path)
                break
            except ServiceUnavailable:
                if attempt == 2 or "Address already in use" not in self.log_path.read_text(errors="replace"):
                    raise
                _kill_child(self)  # port clash: retry on another port
        created = subprocess.run(
            [client, "--no-defaults", f"--socket={self.socket_path}", "-u", self.user, "-e", f"CREATE DATABASE IF NOT EXISTS `{self.database}`"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if created.returncode != 0:
            raise ServiceUnavailable(f"creating database {self.database} failed: {created.stderr.strip()}{_tail(self.log_path)}")


# --------------------------------------------------------------------------- Prometheus


def prometheus_binaries() -> tuple[str, str]:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not tool:
        raise ServiceUnavailable("prometheus/promtool not found: install them with `sudo apt-get install -y prometheus` (or run scripts/provision.sh)")
    return prom, tool


class PrometheusService(_Service):
    """Prometheus scraping ``targets`` (host:port list) every ``scrape_interval``."""

    name = "prometheus"

    def __init__(self, targets: list[str], scrape_interval: str = "1s", rule_files: list[str] | None = None) -> None:
        super().__init__()
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        prom, _ = prometheus_binaries()
        config = self.workdir / "prometheus.yml"
        rules = "".join(f"\n  - {path}" for path in self.rule_files)
        targets = ", ".join(f"'{t}'" for t in self.targets)
        config.write_text(
            f"global:\n  scrape_interval: {self.scrape_interval}\n  evaluation_interval: {self.scrape_interval}\n"
            + (f"rule_files:{rules}\n" if rules else "")
            + f"scrape_configs:\n  - job_name: chokepoint\n    static_configs:\n      - targets: [{targets}]\n"
        )
        self.port = free_port()
        self._spawn(
            [
                prom,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ]
        )
        wait_for_port(self.port, 30, self.proc, self.log_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        raise ServiceUnavailable(f"prometheus not ready after 30s{_tail(self.log_path)}")


# --------------------------------------------------------------------------- Chromium


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ServiceUnavailable("chromium not found: install it with `sudo apt-get install -y chromium chromium-driver` (or run scripts/provision.sh)")


def chromium_screenshot(url: str, out_png: Path, size: tuple[int, int] = (1280, 900), budget_ms: int = 10000) -> Path:
    """Render ``url`` in headless Chromium to ``out_png`` (waits ``budget_ms`` of virtual time)."""
    with tempfile.TemporaryDirectory(prefix="chokepoint-chromium-") as profile:
        proc = subprocess.run(
            [
                chromium_path(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={out_png}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if not out_png.exists():
        raise ServiceUnavailable(f"chromium produced no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return out_png


# --------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "up":
        print("usage: devservices.py up postgres|kafka|redis|mariadb ...", file=sys.stderr)
        return 2
    factories = {"postgres": PostgresService, "kafka": KafkaService, "redis": RedisService, "mariadb": MariaDBService}
    with contextlib.ExitStack() as stack:
        for name in argv[1:]:
            if name not in factories:
                print(f"unknown service {name!r}; choose from {', '.join(factories)}", file=sys.stderr)
                return 2
            try:
                svc = stack.enter_context(factories[name]())
            except ServiceUnavailable as exc:
                print(f"error: {name}: {exc}", file=sys.stderr)
                return 1
            print(f"{name}: {getattr(svc, 'dsn', None) or getattr(svc, 'url', None) or getattr(svc, 'bootstrap', '')}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
