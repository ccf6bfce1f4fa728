"""Flask + requests with HTTPAdapter(max_retries=Retry(total=6)) on a flaky shipping API, plus a slowish
answer: retries (dominant) make every call several calls."""

import os

import requests
from flask import Flask
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
session = requests.Session()
session.mount("http://", HTTPAdapter(max_retries=Retry(total=6, status_forcelist=[503], backoff_factor=0, raise_on_status=False)))


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/ship/<int:n>")
def ship(n):
    response = session.get(f"{DEP}/ship/{n}", timeout=3)
    return {"n": n, "ok": response.ok}
