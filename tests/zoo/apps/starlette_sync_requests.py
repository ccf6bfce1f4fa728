"""Starlette on uvicorn: an ``async def`` endpoint calls a 40 ms API with the blocking ``requests`` library."""

import os

import requests
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

DEP = os.environ["DEP_URL"]


async def health(request):
    return JSONResponse({"ok": True})


async def weather(request):
    city = request.path_params["city"]
    forecast = requests.get(f"{DEP}/forecast/{city}", timeout=5).json()  # blocks the event loop
    return JSONResponse({"city": city, "forecast": forecast})


app = Starlette(routes=[Route("/health", health), Route("/weather/{city}", weather)])
