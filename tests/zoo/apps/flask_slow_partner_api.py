"""Flask on gunicorn gthread: every page calls a partner API that answers in ~300 ms."""

import os

import requests
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
session = requests.Session()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/shipping/<int:order>")
def shipping(order):
    estimate = session.get(f"{DEP}/estimate", params={"order": order}, timeout=5).json()
    return {"order": order, "estimate": estimate}
