"""The web front: one aiohttp server on ``HTTP_HOST:HTTP_PORT`` with the page, the HTTP API,
``/metrics`` and the health endpoints, on the service's own event loop and its one shared check
service (so one detector serves the page, scripts and the chat bots alike).

``GET /``                 the page (static files from this package; no build step, no CDN)
``POST /v1/check``        check one image (multipart field ``file`` or the raw body)
``GET /v1/model``         the model card as JSON (what the page shows)
``GET /v1/model-card``    the model card as text
``GET /openapi.json``     the API's description
``GET /metrics``          Prometheus metrics
``GET /healthz``, ``/readyz``  liveness and readiness, as before

The server is the service's ``health`` part (up first, down last); :class:`WebIntake` is its
chat-adapter-like part: on shutdown it refuses new checks with 503 and waits for the ones in
flight, which still get their answer.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_remotes import XForwardedStrict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.core import Band, CheckService, DetectorClosed, IdleTracker, ModelCard
from bot.core.replies import Refusal, error_reply
from bot.http_health import add_health_routes
from bot.logs import new_request_id, request_context
from bot.runner import Service
from bot.settings import Settings
from bot.web.api import (
    ApiError,
    b64,
    error_json,
    png_of,
    read_upload,
    refusal_response,
    verdict_json,
)
from bot.web.metrics import Metrics
from bot.web.openapi import spec

_log = logging.getLogger(__name__)

STATIC = Path(str(resources.files("bot.web") / "static"))
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRUE = {"1", "true", "yes", "on"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The page loads nothing from elsewhere; images are shown from blob: URLs of the user's files.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# Reached directly (health checks, Prometheus) even when a proxy fronts everything else.
_DIRECT = ("/healthz", "/readyz", "/metrics")


class WebIntake:
    """The web front as the runner's adapters are driven: ``stop_intake`` makes new checks get
    503 "shutting down"; ``finish`` waits until every check already taken in has answered."""

    name = "http"

    def __init__(self) -> None:
        self.closing = False
        self._in_flight = IdleTracker()

    async def start(self) -> None:  # the server itself is started by the service (``health``)
        return None

    async def stop_intake(self) -> None:
        self.closing = True

    async def finish(self) -> None:
        await self._in_flight.wait_idle()

    def track(self) -> AbstractContextManager[None]:
        return self._in_flight.track()


class WebServer:
    """The HTTP server. ``ready`` says whether the whole service is ready (for ``/readyz``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        checks: CheckService,
        card: ModelCard,
        metrics: Metrics,
        ready: Callable[[], bool],
        api_token: str | None = None,
        max_image_bytes: int,
        max_faces: int = 8,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.trusted_proxies = trusted_proxies
        self.port = port
        self.checks = checks
        self.card = card
        self.metrics = metrics
        self.intake = WebIntake()
        self._ready = ready
        self._token = api_token.encode() if api_token else None
        self.max_image_bytes = max_image_bytes
        self.max_faces = max_faces
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        middlewares = [self._middleware]
        if self.trusted_proxies:
            # aiohttp-remotes: the client address from X-Forwarded-For, only when the peer is
            # one of the trusted proxies (a direct client cannot name itself someone else).
            remotes = XForwardedStrict([list(self.trusted_proxies)], white_paths=_DIRECT)
            middlewares.insert(0, remotes.middleware)
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        app.router.add_post("/v1/check", self._check)
        app.router.add_get("/v1/model", self._model)
        app.router.add_get("/v1/model-card", self._model_card)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_get("/metrics", self._metrics)
        add_health_routes(app, self._ready)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        _log.info(
            "web page and API on %s/ (POST /v1/check, /metrics, /healthz, /readyz)%s",
            self.origin,
            "; the API needs a bearer token" if self._token else "",
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- middleware: request id, errors as JSON, security headers, one log line per call ----

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("X-Request-Id", "")
        rid = given if _REQUEST_ID.fullmatch(given) else new_request_id()
        api = request.path.startswith("/v1/")
        with request_context(rid):
            t0 = time.perf_counter()
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_json(exc.status, exc.code, exc.message, _auth_header(exc))
            except web.HTTPException as exc:
                if not api:
                    raise
                response = error_json(exc.status, _code(exc.status), exc.reason)
            except Exception as exc:  # one apology, the traceback in the log
                if not api:
                    raise
                refusal = error_reply(exc)
                response = error_json(500, refusal.problem.value, refusal.message)
            response.headers["X-Request-Id"] = rid
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            if request.path == "/" or request.path.startswith("/static/"):
                response.headers.setdefault("Content-Security-Policy", _CSP)
                response.headers.setdefault("Cache-Control", "no-cache")
            if api:
                _log.info(
                    "%s %s -> %d in %.0f ms", request.method, request.path, response.status,
                    (time.perf_counter() - t0) * 1000,
                )  # fmt: skip
            return response

    # --- the API ---------------------------------------------------------------------------

    def _authorise(self, request: web.Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "unauthorized", "This API needs a token: send the header "
                           "'Authorization: Bearer <token>'.")
        if not hmac.compare_digest(given.strip().encode(), self._token):
            raise ApiError(401, "unauthorized", "The API token is not right.")

    async def _check(self, request: web.Request) -> web.StreamResponse:
        with self.intake.track():
            if self.intake.closing:
                return refusal_response(error_reply(DetectorClosed("web intake stopped")))
            self._authorise(request)
            upload = await read_upload(request, self.max_image_bytes)
            sender = f"http:{request.remote or 'unknown'}"
            reply = await self.checks.check(sender, upload.ref)
            if isinstance(reply, Refusal):
                return refusal_response(reply)
            if _wants_png(request):
                return web.Response(
                    body=await png_of(reply), content_type="image/png",
                    headers={"X-Verdict": reply.band.value, "X-P-Fake": f"{reply.p_fake:.4f}"},
                )  # fmt: skip
            body = verdict_json(reply, upload.file_name)
            if request.query.get("annotate", "").lower() in _TRUE:
                body["annotated_png"] = b64(await png_of(reply))
            return web.json_response(body)

    async def _model(self, request: web.Request) -> web.Response:
        return web.json_response(self.model_json())

    def model_json(self) -> dict[str, Any]:
        low, high = self.card.thresholds
        return {
            "name": self.card.name,
            "description": self.card.description,
            "thresholds": [low, high],
            "bands": [
                {"verdict": Band.REAL.value, "label": Band.REAL.label, "below": low},
                {"verdict": Band.UNCERTAIN.value, "label": Band.UNCERTAIN.label},
                {"verdict": Band.FAKE.value, "label": Band.FAKE.label, "from": high},
            ],
            "figures": dict(sorted(self.card.figures.items())),
            "model_card": "/v1/model-card",
            "auth_required": self._token is not None,
            "max_image_bytes": self.max_image_bytes,
            "max_faces": self.max_faces,
        }

    async def _model_card(self, request: web.Request) -> web.Response:
        return web.Response(text="\n".join(self.card.lines()) + "\n")

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(spec())

    # --- page, metrics, health ---------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)  # on the loop: counters change there
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def _wants_png(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    return "image/png" in accept and "application/json" not in accept


def _auth_header(exc: ApiError) -> dict[str, str] | None:
    return {"WWW-Authenticate": 'Bearer realm="deepfake-bot"'} if exc.status == 401 else None


def _code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")


def attach_web(
    service: Service, settings: Settings, card: ModelCard, metrics: Metrics
) -> WebServer:
    """Put the web front on ``service``: its server as the service's HTTP part (up first, down
    last) and its intake beside the chat adapters (stops taking checks and finishes with them).
    ``service.checks`` must be the metered check service built with ``metrics``."""
    token = settings.http_api_token
    web = WebServer(
        settings.http_host, settings.http_port, checks=service.checks, card=card,
        metrics=metrics, ready=lambda: service.ready, max_image_bytes=settings.max_image_bytes,
        max_faces=settings.max_faces, trusted_proxies=settings.trusted_proxies,
        api_token=token.get_secret_value() if token is not None else None,
    )  # fmt: skip
    service.frontends.append(web.intake)
    service.health = web
    return web
