"""The web front: the page, the HTTP API (``POST /v1/check``) and ``/metrics``, beside the
Telegram and Discord adapters on the same loop and the same check service."""

from bot.web.app import WebIntake, WebServer, attach_web
from bot.web.metrics import MeteredCheckService, Metrics

__all__ = ["MeteredCheckService", "Metrics", "WebIntake", "WebServer", "attach_web"]
