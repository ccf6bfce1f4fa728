"""Flask + urllib3: a flaky inventory API, and a client configured to retry 503s five times."""

import os

import urllib3
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
http = urllib3.PoolManager(maxsize=16, retries=urllib3.Retry(total=5, status_forcelist=[503], backoff_factor=0, raise_on_status=False), timeout=3.0)


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/inventory/<int:sku>")
def inventory(sku):
    response = http.request("GET", f"{DEP}/inventory/{sku}")
    return {"sku": sku, "available": response.status == 200}
