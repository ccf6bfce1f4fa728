"""Flask + requests: the address-validation API is called without a timeout; now and then it hangs."""

import os

import requests
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/validate/<int:n>")
def validate(n):
    answer = requests.get(f"{DEP}/address/{n}").json()  # no timeout=
    return {"n": n, "valid": answer["ok"]}
