"""Run several ASGI apps with uvicorn on one background event-loop thread.

The collector serves the OTLP/HTTP receiver and the REST API on two ports from one
asyncio loop, in a daemon thread, so that ``start()`` returns as soon as both listen
and the caller's thread stays free (the foreground ``chokepoint serve`` waits for a
signal; tests keep running).  Sockets are bound before the loop starts, so port ``0``
works and a busy port fails ``start()`` immediately with ``OSError``.

Usage::

    servers = AsgiServers()
    servers.add("otlp-http", app, "127.0.0.1", 4318)
    servers.start()                 # raises on a bind error or a server that fails to start
    servers.port("otlp-http")       # the bound port
    servers.shutdown()              # idempotent
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass

import uvicorn

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    name: str
    app: object
    host: str
    port: int
    sock: socket.socket | None = None
    server: uvicorn.Server | None = None


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class AsgiServers:
    def __init__(self, start_timeout_s: float = 15.0, graceful_timeout_s: int = 5) -> None:
        self._entries: dict[str, _Entry] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_timeout_s = start_timeout_s
        self._graceful_timeout_s = graceful_timeout_s
        self._lock = threading.Lock()

    def add(self, name: str, app, host: str, port: int) -> None:
        self._entries[name] = _Entry(name, app, host, port)

    def port(self, name: str) -> int:
        return self._entries[name].port

    def start(self) -> None:
        try:
            for entry in self._entries.values():
                entry.sock = bind_socket(entry.host, entry.port)
                entry.port = entry.sock.getsockname()[1]
                config = uvicorn.Config(
                    entry.app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    http="h11",
                    timeout_graceful_shutdown=self._graceful_timeout_s,
                    server_header=False,
                )
                entry.server = uvicorn.Server(config)
        except BaseException:
            self._close_sockets()
            raise
        started = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve_all(started, failure))
            except BaseException as exc:
                failure.append(exc)
                started.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="chokepoint-asgi", daemon=True)
        self._thread.start()
        if not started.wait(self._start_timeout_s):
            self.shutdown()
            raise TimeoutError(f"ASGI servers did not start within {self._start_timeout_s}s")
        if failure or not all(e.server.started for e in self._entries.values()):
            self.shutdown()
            raise RuntimeError(f"ASGI servers failed to start: {failure[0] if failure else 'a server did not start'}")

    async def _serve_all(self, started: threading.Event, failure: list) -> None:
        tasks = [asyncio.ensure_future(e.server.serve(sockets=[e.sock])) for e in self._entries.values()]

        async def watch() -> None:
            while not all(e.server.started for e in self._entries.values()):
                if any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.01)
            started.set()

        watcher = asyncio.ensure_future(watch())
        results = await asyncio.gather(*tasks, return_exceptions=True)
        watcher.cancel()
        for result in results:
            if isinstance(result, BaseException):
                failure.append(result)
        started.set()

    def shutdown(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        for entry in self._entries.values():
            if entry.server is not None:
                entry.server.should_exit = True
        if thread is not None:
            thread.join(self._graceful_timeout_s + 5)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for entry in self._entries.values():
            if entry.sock is not None:
                entry.sock.close()
                entry.sock = None
