"""Unit tests for shop.switches: parsing SHOP_SWITCHES, ownership, atomic updates, the admin endpoint."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shop.switches import OWNERS, SWITCH_NAMES, SwitchError, Switches, admin_router, owner_of, parse_switch_list

from chokepoint.collector.catalog import FINDING_KINDS


def test_switch_names_are_the_analyzer_finding_kinds():
    assert sorted(SWITCH_NAMES) == sorted(k.kind for k in FINDING_KINDS)


def test_every_switch_has_an_owner_and_owners_name_only_known_switches():
    owned = {name for names in OWNERS.values() for name in names}
    assert owned == set(SWITCH_NAMES)
    assert owner_of("consumer_lag") == ("fulfilment",)
    assert owner_of("retry_storm") == ("shop", "payment")


def test_parse_switch_list_strips_dedupes_and_keeps_order():
    assert parse_switch_list(" slow_query, n_plus_one,,slow_query ") == ("slow_query", "n_plus_one")
    assert parse_switch_list("") == ()
    assert parse_switch_list(None) == ()


def test_parse_switch_list_names_the_unknown_switch():
    with pytest.raises(SwitchError, match="unknown switch 'slow_qeury'"):
        parse_switch_list("n_plus_one,slow_qeury")


def test_from_text_keeps_owned_and_reports_ignored():
    switches = Switches.from_text("payment", "circuit_open,slow_query")
    assert switches.enabled() == ("circuit_open",)
    assert switches.ignored == ("slow_query",)
    assert switches.on("circuit_open") is True
    assert switches.on("external_dependency_slow") is False
    assert switches.describe() == "switches=circuit_open (not this service's: slow_query)"


def test_unknown_service_is_an_error():
    with pytest.raises(SwitchError, match="unknown service"):
        Switches("warehouse")


def test_update_is_all_or_nothing():
    switches = Switches("shop")
    with pytest.raises(SwitchError, match="not handled by the shop service; set it on the fulfilment service"):
        switches.update({"slow_query": True, "consumer_lag": True})
    assert switches.on("slow_query") is False
    with pytest.raises(SwitchError, match="expected true or false"):
        switches.update({"slow_query": True, "n_plus_one": "yes"})
    assert switches.enabled() == ()
    assert switches.update({"slow_query": True})["slow_query"] is True


def test_callbacks_fire_only_on_change():
    switches = Switches("shop", ["n_plus_one"])
    seen: list[tuple[str, bool]] = []
    switches.on_change(lambda name, on: seen.append((name, on)))
    switches.update({"n_plus_one": True, "slow_query": True})
    switches.update({"slow_query": False})
    assert seen == [("slow_query", True), ("slow_query", False)]


def _client(switches: Switches) -> TestClient:
    app = FastAPI()
    app.include_router(admin_router(switches))
    return TestClient(app)


def test_admin_get_lists_every_owned_switch():
    client = _client(Switches("fulfilment", ["consumer_lag"]))
    assert client.get("/admin/switches").json() == {"service": "fulfilment", "switches": {"consumer_lag": True}}


def test_admin_post_sets_and_returns_state():
    switches = Switches("payment")
    response = _client(switches).post("/admin/switches", json={"circuit_open": True, "external_dependency_slow": False})
    assert response.status_code == 200
    assert response.json()["switches"]["circuit_open"] is True
    assert switches.on("circuit_open") is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"no_such_switch": True}, "unknown switch 'no_such_switch'"),
        ({"slow_query": True}, "not handled by the payment service"),
        ({"circuit_open": 1}, "expected true or false"),
    ],
)
def test_admin_post_rejects_bad_input_and_changes_nothing(body, message):
    switches = Switches("payment")
    response = _client(switches).post("/admin/switches", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert switches.enabled() == ()


def test_admin_post_rejects_a_non_object_body():
    response = _client(Switches("shop")).post("/admin/switches", json=["slow_query"])
    assert response.status_code == 422


def test_unavailable_switches_are_refused_with_the_reason_at_start_and_at_runtime():
    reason = {"consumer_lag": "no Kafka here"}
    with pytest.raises(SwitchError, match="'consumer_lag' is unavailable here: no Kafka here"):
        Switches.from_text("shop", "slow_query,consumer_lag", unavailable=reason)
    switches = Switches("shop", ["slow_query"], unavailable=reason)
    with pytest.raises(SwitchError, match="unavailable here: no Kafka here"):
        switches.update({"slow_query": False, "consumer_lag": True})
    assert switches.on("slow_query") is True  # all or nothing
    assert _client(switches).get("/admin/switches").json()["unavailable"] == reason
    with pytest.raises(SwitchError, match="unknown switch 'nope'"):
        Switches("shop", unavailable={"nope": "?"})
