"""Optional bearer-token check shared by the OTLP receivers and the REST API.

When ``CHOKEPOINT_TOKEN`` (``CollectorConfig.token``) is set, every ingest and API
request must carry ``Authorization: Bearer <token>`` (gRPC: the ``authorization``
metadata key).  Without a token configured, everything is allowed.  ``/metrics`` is
guarded too, so a Prometheus scrape config then needs ``authorization: {credentials: ...}``.

Comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac


class BearerAuth:
    """``BearerAuth(token).allows(header_value) -> bool``; ``token=None`` allows all."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: str | bytes | None) -> bool:
        if self._expected is None:
            return True
        if not authorization:
            return False
        if isinstance(authorization, str):
            try:
                authorization = authorization.encode("latin-1")
            except UnicodeEncodeError:
                return False
        # the scheme is case-insensitive (RFC 7235)
        if authorization[:7].lower() == b"bearer ":
            authorization = b"Bearer " + authorization[7:].strip()
        return hmac.compare_digest(authorization, self._expected)


UNAUTHORIZED_MESSAGE = "missing or wrong bearer token (set Authorization: Bearer <CHOKEPOINT_TOKEN>)"
