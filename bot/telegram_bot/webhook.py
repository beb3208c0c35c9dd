"""Webhook intake: an aiohttp server that receives Telegram's update POSTs and feeds them to
the PTB application's update queue.

Only requests carrying the secret token given to ``setWebhook`` (header
``X-Telegram-Bot-Api-Secret-Token``, compared in constant time) are accepted. The server runs on
its own listen address/port so that the public webhook port exposes nothing else (health
endpoints stay on the internal HTTP server). Replies go out through the Bot API as usual.
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web
from telegram import Update
from telegram.ext import Application

_log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024  # updates are small JSON objects; files are fetched separately


class WebhookServer:
    def __init__(
        self,
        application: Application,  # type: ignore[type-arg]
        *,
        path: str,
        secret: str,
        host: str,
        port: int,
    ) -> None:
        self.application = application
        self.path = path
        self._secret = secret.encode()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port: report the one the system picked
            self.port = int(self._runner.addresses[0][1])
        _log.info("Telegram webhook listening on %s:%d%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            _log.warning("webhook request without the right secret token refused")
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict):
                raise ValueError("an update is a JSON object")
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError) as exc:
            _log.warning("webhook: unreadable update refused: %s", exc)
            return web.Response(status=400)
        await self.application.update_queue.put(update)
        return web.Response()
