"""Accept-backlog probe (``accept_backlog``): connections waiting for a server to accept them.

For pre-fork and threaded servers (gunicorn sync / gthread / uvicorn workers, uvicorn,
any server whose process holds its listening socket), the wait before the app sees a
request starts in the kernel: a connection the server has not yet ``accept()``-ed sits
in the listening socket's queue, where no span and no worker-pool gauge can see it.

=========================================  ============================================
``chokepoint.server.accept_backlog``       gauge, connections in the accept queue of the
                                           process's listening TCP sockets, now (all
                                           worker processes share one queue per socket)
``chokepoint.server.accept_backlog.max``   gauge, the queue's limit (``listen()`` backlog,
                                           capped by ``net.core.somaxconn``)
``chokepoint.server.accept_rate``          gauge, connections accepted per second by all
                                           processes serving those sockets, since the
                                           previous collection
=========================================  ============================================

With the rate, Little's law gives the queue's wait: ``backlog / accept_rate`` seconds.

How (Linux only; elsewhere the probe is unavailable): at collection the probe lists the
sockets among ``/proc/self/fd`` and asks each new one (a ``dup``, once per socket: those
found not listening are remembered and skipped) whether it is a listening TCP socket;
for those, ``TCP_INFO`` gives the accept queue's length (``tcpi_unacked``, what
``ss -ltn`` shows as Recv-Q, and ``/proc/net/tcp``'s ``rx_queue``) and its limit
(``tcpi_sacked``, ss's Send-Q).  Every
worker of a pre-fork server holds the same sockets, so one process per server reports
them: the one holding an exclusive ``flock`` on ``<tmp>/chokepoint-listen-<inode>.lock``
(taken at collection, released when that process exits, then taken by another worker).
Accepts are counted in each process (``socket.socket.accept`` wrapped: one counter
increment per connection accepted, on any socket of the process) and published in a
64 KiB slot file next to the lock (one 16-byte slot per process, at ``pid % 4096``) at
each collection; the reporting process sums what the others published, so the rate lags
by up to one export interval per process.  Nothing runs between collections.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import tempfile
import time

from opentelemetry.metrics import Observation

from chokepoint.instrument import signals
from chokepoint.instrument.probes.patching import BaseProbe, ProbeUnavailable, report_error

_SLOTS = 4096
_SLOT = struct.Struct("<qq")  # pid, accepts so far


def _listen_info(fd: int) -> tuple[int, int, int] | bool:
    """(port, accept queue now, its limit) of a listening TCP socket ``fd``; ``True`` for a
    TCP socket not connected yet (it may listen later), ``False`` for any other socket.

    ``TCP_INFO`` of a socket in ``LISTEN`` state carries the accept queue's length in
    ``tcpi_unacked`` and its limit in ``tcpi_sacked`` (bytes 24..32 of ``struct tcp_info``).
    """
    try:
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
            info = dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            if info[0] == 7:  # TCP_CLOSE: created, not yet listening or connected
                return True
            if info[0] != 10 or not dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):  # not TCP_LISTEN
                return False
            queued, limit = struct.unpack_from("II", info, 24)
            return dup.getsockname()[1], queued, limit
    except (AttributeError, OSError, struct.error, ValueError, IndexError, TypeError):
        return False


def listening_sockets(not_listening: set[int] | None = None) -> dict[int, tuple[int, int, int]]:
    """This process's listening TCP sockets: inode → (port, accept queue now, queue limit).

    ``not_listening``: inodes already found not to be listening TCP sockets (skipped, and
    added to), so a process with many client connections looks at each one once.
    """
    skip = not_listening if not_listening is not None else set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    found: dict[int, tuple[int, int, int]] = {}
    for fd in fds:
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not link.startswith("socket:["):
            continue
        inode = int(link[8:-1])
        if inode in skip or inode in found:
            continue
        info = _listen_info(int(fd))
        if info is False:
            skip.add(inode)
        elif info is not True:
            found[inode] = info
    return found


class AcceptBacklogProbe(BaseProbe):
    name = "accept_backlog"

    def __init__(self, meter, *, directory: str | None = None) -> None:
        if not os.path.isdir("/proc/self/fd") or not hasattr(socket, "TCP_INFO"):
            raise ProbeUnavailable(f"probe {self.name!r} needs Linux (/proc/self/fd, TCP_INFO)")
        super().__init__(meter)
        self.directory = directory or tempfile.gettempdir()
        self.accepted = 0
        self._lock_fd: int | None = None
        self._lock_inode: int | None = None
        self._pid = os.getpid()
        self._seen: dict[int, tuple[int, int]] = {}  # slot → (pid, accepts) at the previous collection
        self._last_s: float | None = None
        self._cache: dict[int, tuple[int, int, int]] | None = None
        self._not_listening: set[int] = set()
        probe = self

        def wrap_accept(original):
            def accept(sock):
                result = original(sock)
                probe.accepted += 1  # inactive: a harmless count
                return result

            return accept

        self.patch(socket.socket, "accept", wrap_accept)
        self.observe(signals.SERVER_ACCEPT_BACKLOG, "{connection}", "Connections waiting to be accepted", self._backlog)
        self.observe(signals.SERVER_ACCEPT_BACKLOG_MAX, "{connection}", "Accept queue limit", self._backlog_max)
        self.observe(signals.SERVER_ACCEPT_RATE, "{connection}/s", "Connections accepted per second, all processes", self._rate)

    # ------------------------------------------------------------------ one read per collection
    def _sockets(self, fresh: bool = False) -> dict[int, tuple[int, int, int]]:
        """The first gauge of a collection reads the sockets; the other two reuse that read."""
        if fresh or self._cache is None:
            if len(self._not_listening) > 100_000:
                self._not_listening.clear()
            self._cache = listening_sockets(self._not_listening)
        return self._cache

    def _reporting(self, found: dict) -> bool:
        """Publish this process's accepts; True if it is the one reporting for these sockets."""
        if not found:
            return False
        inode = min(found)
        if os.getpid() != self._pid:  # forked: the parent's lock and counts are not ours
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)  # our copy only: the parent keeps its lock
            self._pid, self._lock_fd, self._lock_inode, self.accepted, self._seen = os.getpid(), None, None, 0, {}
        base = os.path.join(self.directory, f"chokepoint-listen-{inode}")
        try:
            self._publish(base + ".acc")
        except OSError:
            report_error("accept_backlog.publish")
        if self._lock_inode == inode and self._lock_fd is not None:
            return True
        try:
            fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            report_error("accept_backlog.lock")
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd, self._lock_inode = fd, inode
        return True

    def _publish(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, _SLOT.pack(self._pid, self.accepted), (self._pid % _SLOTS) * _SLOT.size)
        finally:
            os.close(fd)

    def _backlog(self):
        found = self._sockets(fresh=True)
        if self._reporting(found):
            yield Observation(sum(q for _port, q, _limit in found.values()))

    def _backlog_max(self):
        found = self._sockets()
        if self._lock_fd is not None and found and self._lock_inode == min(found):
            limits = [limit for _port, _q, limit in found.values()]
            if all(limit >= 0 for limit in limits):
                yield Observation(sum(limits))

    def _rate(self):
        found = self._sockets()
        if self._lock_fd is None or not found or self._lock_inode != min(found):
            return
        try:
            with open(os.path.join(self.directory, f"chokepoint-listen-{self._lock_inode}.acc"), "rb") as f:
                data = f.read()
        except OSError:
            report_error("accept_backlog.read")
            return
        now, accepted = time.monotonic(), 0
        seen: dict[int, tuple[int, int]] = {}
        for slot in range(len(data) // _SLOT.size):
            pid, count = _SLOT.unpack_from(data, slot * _SLOT.size)
            if pid <= 0:
                continue
            seen[slot] = (pid, count)
            before = self._seen.get(slot)
            if before is None or before[0] != pid or count < before[1]:
                accepted += count if self._last_s is not None else 0  # a process new since the last read
            else:
                accepted += count - before[1]
        last, self._last_s, self._seen = self._last_s, now, seen
        if last is not None and now > last:
            yield Observation(accepted / (now - last))

    def on_uninstall(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
