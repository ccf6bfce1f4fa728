"""Admission control: bounded in-flight OTLP work shared by the HTTP and gRPC receivers.

Each OTLP request asks for a slot before it is decoded and ingested, and gives it back
when done.  When ``max_inflight_requests`` requests (or ``max_inflight_bytes`` of
bodies) are already in progress the request is refused, and the receiver answers with
a retryable error — HTTP 429 with ``Retry-After``, gRPC ``RESOURCE_EXHAUSTED`` with a
``RetryInfo`` — so the sender's exporter backs off and retries instead of the
collector queueing without bound.  Thread-safe.

Usage::

    admission = Admission(max_inflight_requests=64, max_inflight_bytes=256 << 20)
    if not admission.try_acquire(len(body)):
        ...  # 429 / RESOURCE_EXHAUSTED
    try:
        ...
    finally:
        admission.release(len(body))
"""

from __future__ import annotations

import threading


class Admission:
    def __init__(self, max_inflight_requests: int = 64, max_inflight_bytes: int = 256 << 20) -> None:
        if max_inflight_requests < 1 or max_inflight_bytes < 1:
            raise ValueError("admission limits must be >= 1")
        self.max_inflight_requests = max_inflight_requests
        self.max_inflight_bytes = max_inflight_bytes
        self._lock = threading.Lock()
        self.inflight_requests = 0
        self.inflight_bytes = 0
        self.refused = 0

    def try_acquire(self, nbytes: int = 0) -> bool:
        """Take a slot for a request of ``nbytes``; ``False`` (and counted) when full.

        A single request larger than ``max_inflight_bytes`` is still admitted when
        nothing else is in flight (the body limit is enforced elsewhere).
        """
        with self._lock:
            if self.inflight_requests >= self.max_inflight_requests or (self.inflight_requests and self.inflight_bytes + nbytes > self.max_inflight_bytes):
                self.refused += 1
                return False
            self.inflight_requests += 1
            self.inflight_bytes += nbytes
            return True

    def release(self, nbytes: int = 0) -> None:
        with self._lock:
            self.inflight_requests = max(0, self.inflight_requests - 1)
            self.inflight_bytes = max(0, self.inflight_bytes - nbytes)
