"""Locust load profile for the demo shop: the same route mix as ``shop.load``.

Usage::

    locust -f examples/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -r 5 -t 60s
    chokepoint loadtest examples/locustfile.py --users 20 --duration 60

Each simulated user picks routes with the weights of ``shop.load.DEFAULT_MIX`` (product
pages, search, recommendations, FX quotes, order listings, placing orders, the catalog
export) and waits 0.5–1.5 s between requests.  Requests are named by route
(``product``, ``search``, …) so Locust's statistics group them like the shop's routes.
Set ``SHOP_LOAD_MIX=product=5,search=1`` to use another mix.
"""

from __future__ import annotations

import os
import random
from typing import ClassVar

from locust import HttpUser, between, task
from shop.load import DEFAULT_MIX, ROUTES, RequestSpec, parse_mix

MIX = parse_mix(os.environ["SHOP_LOAD_MIX"]) if os.environ.get("SHOP_LOAD_MIX") else dict(DEFAULT_MIX)


def _route_task(route: str):
    def request(user: ShopUser) -> None:
        spec: RequestSpec = ROUTES[route](user.rng)
        user.client.request(spec.method, spec.path, json=spec.json, name=spec.route)

    request.__name__ = f"request_{route}"
    return request


class ShopUser(HttpUser):
    wait_time = between(0.5, 1.5)
    tasks: ClassVar = {task(_route_task(route)): max(1, round(weight)) for route, weight in MIX.items() if weight > 0}  # Locust wants int weights

    def on_start(self) -> None:
        self.rng = random.Random()
