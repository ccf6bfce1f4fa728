"""Flask + pybreaker: recommendations come from a service that is down; the breaker opens."""

import os

import pybreaker
import requests
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
recommendations_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=10, name="recommendations")


@recommendations_breaker
def recommendations(user):
    response = requests.get(f"{DEP}/recommendations/{user}", timeout=2)
    response.raise_for_status()
    return response.json()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/home/<int:user>")
def home(user):
    try:
        recs = recommendations(user)
    except (pybreaker.CircuitBreakerError, requests.RequestException):
        recs = []  # the page without recommendations
    return {"user": user, "recommendations": recs}
