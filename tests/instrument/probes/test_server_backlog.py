"""Accept-backlog probe on a listening socket of this process; ground truth: ``ss -ltn`` and the test's own connects."""

from __future__ import annotations

import socket
import subprocess
import time

from chokepoint.instrument import signals
from chokepoint.instrument.probes.server_backlog import AcceptBacklogProbe, listening_sockets


def _ss(port: int) -> tuple[int, int]:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout.split()
    return int(out[1]), int(out[2])


def test_backlog_limit_and_accept_rate_of_a_listening_socket(metrics, installed, tmp_path):
    installed.append(AcceptBacklogProbe(metrics.meter, directory=str(tmp_path)))
    server = socket.create_server(("127.0.0.1", 0), backlog=5)
    port = server.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        time.sleep(0.05)
        assert {p for p, _q, _m in listening_sockets().values()} >= {port}
        got = metrics.collect()
        assert (metrics.value(signals.SERVER_ACCEPT_BACKLOG, None, got), metrics.value(signals.SERVER_ACCEPT_BACKLOG_MAX, None, got)) == _ss(port) == (3, 5)
        t0 = time.monotonic()
        accepted = [server.accept()[0] for _ in range(3)]
        time.sleep(0.2)
        got = metrics.collect()
        elapsed = time.monotonic() - t0
        assert metrics.value(signals.SERVER_ACCEPT_BACKLOG, None, got) == 0 == _ss(port)[0]
        rate = metrics.value(signals.SERVER_ACCEPT_RATE, None, got)
        assert 3 / (elapsed + 1.0) < rate <= 3 / 0.2 + 1e-9  # 3 accepts since the previous collection
        for s in accepted:
            s.close()
    finally:
        for c in clients:
            c.close()
        server.close()


def test_uninstall_restores_socket_accept(metrics, tmp_path):
    original = socket.socket.accept
    probe = AcceptBacklogProbe(metrics.meter, directory=str(tmp_path))
    assert socket.socket.accept is not original
    probe.uninstall()
    assert socket.socket.accept is original
