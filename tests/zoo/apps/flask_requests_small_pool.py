"""Flask on gunicorn gthread (16 threads) + requests: one Session whose pool holds 2 connections and blocks."""

import os

import requests
from flask import Flask
from requests.adapters import HTTPAdapter

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
session = requests.Session()
session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=2, pool_block=True))


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/rates/<int:n>")
def rates(n):
    return {"n": n, "rate": session.get(f"{DEP}/rates/{n}", timeout=5).json()}
