"""Starlette + httpx.AsyncClient(timeout=None): the geo API hangs now and then, and nothing stops the wait."""

import os

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

client = httpx.AsyncClient(base_url=os.environ["DEP_URL"], timeout=None)


async def health(request):
    return JSONResponse({"ok": True})


async def geo(request):
    response = await client.get(f"/geo/{request.path_params['ip']}")
    return JSONResponse({"geo": response.json()})


app = Starlette(routes=[Route("/health", health), Route("/geo/{ip}", geo)])
