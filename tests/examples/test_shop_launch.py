"""Unit tests for shop.launch: a process that cannot start is reported with its log, nothing is left running; a
chosen port taken meanwhile is replaced."""

from __future__ import annotations

import socket

import httpx
import pytest
from shop.launch import LaunchError, PortTaken, ShopStack, SwitchUnavailable


def test_a_bad_switch_fails_the_launch_loudly_and_stops_everything(tmp_path):
    stack = ShopStack("postgresql://nobody@127.0.0.1:1/none", "127.0.0.1:1", switches="slow_qeury", log_dir=tmp_path, ready_timeout_s=60)
    with pytest.raises(LaunchError, match="exited with code 2") as info:
        stack.start()
    assert "unknown switch 'slow_qeury'" in str(info.value)
    assert (tmp_path / "payment.log").read_text().startswith("error: unknown switch")
    assert all(proc.proc.poll() is not None for proc in stack.processes.values())


def test_ports_are_distinct_and_urls_are_loopback():
    stack = ShopStack("postgresql://u@127.0.0.1:1/db", "127.0.0.1:1", ports={"shop": 18123})
    assert stack.shop_url == "http://127.0.0.1:18123"
    assert len(set(stack.ports.values())) == 3
    assert stack.payment_url.startswith("http://127.0.0.1:") and stack.fulfilment_url.startswith("http://127.0.0.1:")


def test_nothing_is_created_before_start():
    stack = ShopStack("postgresql://u@127.0.0.1:1/db", "127.0.0.1:1")
    assert stack.log_dir is None and stack.processes == {}
    stack.stop()  # idempotent, harmless before start


def test_without_kafka_the_stack_has_no_fulfilment_and_refuses_its_switch_before_any_call(tmp_path):
    stack = ShopStack(f"sqlite:///{tmp_path / 'shop.sqlite'}", None)
    assert stack.mode == {"database": "sqlite", "kafka": False} and stack.services == ("payment", "shop")
    with pytest.raises(SwitchUnavailable, match="'consumer_lag' is unavailable"):
        stack.set_switches(slow_query=True, consumer_lag=True)  # nothing runs: refused before any request
    for off in ("", "none", "OFF"):
        assert ShopStack("postgresql://u@127.0.0.1:1/db", off).mode == {"database": "postgresql", "kafka": False}
    assert ShopStack("postgresql://u@127.0.0.1:1/db", "127.0.0.1:9092").services == ("payment", "shop", "fulfilment")


def _occupy(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_chosen_port_taken_before_start_is_replaced_and_the_stack_starts(tmp_path):
    stack = ShopStack(f"sqlite:///{tmp_path / 'shop.sqlite'}", None, log_dir=tmp_path, shop_args=["--products", "500"])
    taken = stack.ports["payment"]
    with _occupy(taken), stack:
        assert stack.ports["payment"] != taken
        assert httpx.get(stack.payment_url + "/health", timeout=10).status_code == 200
        assert httpx.get(stack.shop_url + "/health", timeout=10).status_code == 200


def test_a_given_port_taken_fails_loudly_naming_it(tmp_path):
    port = ShopStack("postgresql://u@127.0.0.1:1/db", None).ports["payment"]
    stack = ShopStack(f"sqlite:///{tmp_path / 'shop.sqlite'}", None, log_dir=tmp_path, ports={"payment": port}, shop_args=["--products", "500"])
    with _occupy(port), pytest.raises(PortTaken, match="payment exited with code") as info:
        stack.start()
    assert "address already in use" in str(info.value) and info.value.name == "payment"
    assert stack.ports["payment"] == port and all(proc.proc.poll() is not None for proc in stack.processes.values())
