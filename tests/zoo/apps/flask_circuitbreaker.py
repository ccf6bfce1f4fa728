"""Flask + the circuitbreaker decorator + urllib3: the tax service is failing; the circuit opens."""

import os

import urllib3
from circuitbreaker import CircuitBreakerError, circuit
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
http = urllib3.PoolManager(timeout=2.0, retries=False)


@circuit(failure_threshold=5, recovery_timeout=10, name="tax-service")
def tax(amount: int) -> dict:
    response = http.request("GET", f"{DEP}/tax/{amount}")
    if response.status >= 500:
        raise RuntimeError(f"tax service answered {response.status}")
    return response.json()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/total/<int:amount>")
def total(amount):
    try:
        return {"amount": amount, "tax": tax(amount)}
    except (CircuitBreakerError, RuntimeError):
        return {"amount": amount, "tax": None}
