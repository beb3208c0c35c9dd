"""Liveness and readiness over HTTP for container orchestrators, on the service's own loop.

``GET /healthz``: 200 while the process and its event loop are alive (a stuck loop cannot
answer). ``GET /readyz``: 200 once every chat adapter has started and until shutdown begins,
503 otherwise. Bound to ``HTTP_HOST:HTTP_PORT``; meant for the internal network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

_log = logging.getLogger(__name__)


def add_health_routes(app: web.Application, ready: Callable[[], bool]) -> None:
    """``/healthz`` and ``/readyz`` on ``app``: the health server's and the web front's."""

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


class HealthServer:
    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        add_health_routes(app, self._ready)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        _log.info("health endpoints on http://%s:%d/healthz and /readyz", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
