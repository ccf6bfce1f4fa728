"""FastAPI / Starlette: one lean server span per request (:mod:`chokepoint.instrument.asgi`).

Plan rows ``fastapi`` and ``starlette`` (it replaces both upstream instrumentors); switch
``CHOKEPOINT_ASGI`` (``lean`` / ``upstream``); entry point ``chokepoint_asgi``.
"""

from __future__ import annotations

from chokepoint.instrument.integrations.base import Integration


class AsgiIntegration(Integration):
    library = "starlette"  # FastAPI apps are Starlette apps
    libraries = ("fastapi", "starlette")
    _instruments = ("starlette >= 0.13",)

    def install(self, tracer_provider, instruments, config):
        from chokepoint.instrument.asgi import install_lean_asgi

        return install_lean_asgi(tracer_provider)
