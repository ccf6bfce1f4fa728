"""The shop's client for the payment service: httpx behind a pybreaker circuit breaker.

``PaymentClient.charge()`` posts to ``/payments`` through the breaker ``payment``
(opens after ``fail_max`` consecutive failed charges, tries again after
``reset_timeout_s``).  A failed charge raises :class:`PaymentFailed`; a call rejected by
the open breaker raises :class:`PaymentUnavailable`.

The breaker is used as ``with breaker.calling():`` — pybreaker's ``breaker.call(func)``
holds the breaker's lock for the whole call and so serialises all concurrent payments
(one at a time); ``calling()`` checks and updates the state under the lock but runs the
call itself outside it.

Shop switches acting here:

``retry_storm``      each charge is retried up to ``retries`` more times on any error or
                     timeout, immediately (no backoff) — all attempts count as one
                     breaker call, so the breaker stays closed while calls multiply.
``missing_timeout``  the request is sent with ``timeout=None`` (wait forever) instead
                     of ``timeout_s``.
"""

from __future__ import annotations

import threading

import httpx
import pybreaker

from shop.switches import Switches


class PaymentFailed(RuntimeError):
    """The payment service answered with an error or did not answer in time."""


class PaymentUnavailable(RuntimeError):
    """The circuit breaker is open: the call was rejected without being made."""


class PaymentClient:
    def __init__(
        self,
        base_url: str,
        switches: Switches,
        timeout_s: float = 1.0,
        retries: int = 4,
        fail_max: int = 5,
        reset_timeout_s: float = 10.0,
    ) -> None:
        self.switches = switches
        self.timeout_s = timeout_s
        self.retries = retries
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s)
        self.breaker = pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout_s, name="payment", throw_new_error_on_trip=False)
        self._lock = threading.Lock()
        self.attempts = 0
        self.rejected = 0
        self.failed = 0

    def charge(self, order_id: int, amount_cents: int, currency: str) -> dict:
        """Charge an order; returns the payment service's answer."""
        try:
            with self.breaker.calling():
                return self._post_with_retries({"order_id": order_id, "amount_cents": amount_cents, "currency": currency})
        except pybreaker.CircuitBreakerError as exc:
            with self._lock:
                self.rejected += 1
            raise PaymentUnavailable(f"payment circuit breaker is open: {exc}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            with self._lock:
                self.failed += 1
            raise PaymentFailed(f"payment failed: {exc}") from exc

    def _post_with_retries(self, payload: dict) -> dict:
        attempts = 1 + (self.retries if self.switches.on("retry_storm") else 0)
        timeout = None if self.switches.on("missing_timeout") else self.timeout_s
        last_error: Exception | None = None
        for _ in range(attempts):
            with self._lock:
                self.attempts += 1
            try:
                response = self.http.post("/payments", json=payload, timeout=timeout)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def stats(self) -> dict:
        with self._lock:
            return {
                "breaker_state": self.breaker.current_state,
                "breaker_fail_counter": self.breaker.fail_counter,
                "attempts": self.attempts,
                "failed": self.failed,
                "rejected": self.rejected,
            }

    def close(self) -> None:
        self.http.close()
