"""``deepfake-bot run``: every chat adapter (Telegram, Discord), the core and the health server
on one event loop, sharing one detector.

Start-up: the core around the detector, the health server, then each adapter. Shutdown, on
SIGTERM or SIGINT (a second signal kills the process the default way): readiness goes to 503,
every adapter stops taking new work, then each finishes what it took in (running checks reply),
then the detector closes and the health server stops; all within ``SHUTDOWN_GRACE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from bot.core import (
    Admission,
    ChatSettings,
    CheckLimits,
    CheckService,
    Detector,
    ModelCard,
    RateLimiter,
    SlidingWindowLimiter,
)
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.redis_client import SharedRedis
    from bot.web.metrics import Metrics

_log = logging.getLogger(__name__)

# httpx logs every request URL at INFO, and Bot API URLs contain the token. discord.py logs
# gateway payloads (message text) and webhook URLs (interaction tokens) at DEBUG; aiosqlite
# every statement.
_QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "discord": logging.INFO,
    "aiosqlite": logging.INFO,
}


class Frontend(Protocol):
    """A chat adapter as the runner drives it."""

    name: str

    async def start(self) -> None: ...

    async def stop_intake(self) -> None: ...

    async def finish(self) -> None: ...


class Server(Protocol):
    """The HTTP server beside the adapters (health endpoints, or the web front with them)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RedactSecrets(logging.Filter):
    """Replace secret values (tokens) wherever they would appear in a log line."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted, exc_text = message, record.exc_text
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
            if exc_text:
                exc_text = exc_text.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        record.exc_text = exc_text
        return True


def configure_logging(settings: Settings) -> None:
    """One stderr handler: text or JSON lines (``LOG_FORMAT``), request ids, secrets redacted."""
    from bot.logs import configure

    redact = RedactSecrets(settings.secrets())
    configure(settings.log_level, settings.log_format, [redact], _QUIET_LOGGERS)


def build_rate_limiter(settings: Settings, redis: SharedRedis | None = None) -> RateLimiter:
    """Per-sender limits: in this process's memory, or with ``redis`` one budget per sender
    across every replica."""
    if redis is None:
        return SlidingWindowLimiter(settings.rate_limit_per_minute, 60.0)
    from bot.core.redis_ratelimit import RedisWindowLimiter

    return RedisWindowLimiter(redis, settings.rate_limit_per_minute, 60.0)


def build_checks(
    settings: Settings,
    detector: Detector,
    metrics: Metrics | None = None,
    *,
    redis: SharedRedis | None = None,
) -> CheckService:
    """The one check service all adapters share; with ``metrics``, the metered one (counts
    every check by platform and outcome, gives each a request id for the logs); with
    ``redis``, rate limits shared by every replica."""
    make: Callable[..., CheckService] = CheckService
    if metrics is not None:
        from bot.web.metrics import MeteredCheckService

        make = functools.partial(MeteredCheckService, metrics=metrics)
    return make(
        detector,
        limits=CheckLimits(
            max_image_bytes=settings.max_image_bytes,
            max_faces=settings.max_faces,
            download_timeout_s=settings.download_timeout_s,
            analysis_timeout_s=settings.analysis_timeout_s,
            videos=settings.video_enabled,
            max_video_bytes=settings.max_video_bytes,
        ),
        admission=Admission(settings.max_concurrent_checks, settings.check_queue_size),
        rate_limiter=build_rate_limiter(settings, redis),
    )


def build_frontends(
    settings: Settings,
    checks: CheckService,
    card: ModelCard,
    chat_settings: ChatSettings,
    *,
    on_fatal: Callable[[BaseException], None] | None = None,
    redis: SharedRedis | None = None,
) -> list[Frontend]:
    """One adapter per platform whose token is set, all on the same ``checks`` (one detector).
    ``on_fatal`` is called when an adapter loses its platform for good after start-up (the
    Discord gateway refusing the session), so the process can stop and be restarted. ``redis``
    (``REDIS_URL``) is what several processes of the bot share: Telegram's update
    de-duplication, Discord's IDENTIFY turns and per-server settings."""
    frontends: list[Frontend] = []
    if settings.telegram_token is not None:
        from bot.telegram_bot import TelegramBot

        updates = None
        if redis is not None:
            from bot.telegram_bot.claims import RedisUpdateClaims

            updates = RedisUpdateClaims.for_bot(redis, settings)
        frontends.append(TelegramBot(settings, checks, chat_settings, card, updates=updates))
    if settings.discord_token is not None:
        from bot.discord_bot import DiscordBot

        frontends.append(DiscordBot(settings, checks, card, on_fatal=on_fatal, redis=redis))
    return frontends


class Service:
    """The running service: adapters around one ``CheckService`` and one detector."""

    def __init__(
        self,
        frontends: Sequence[Frontend],
        checks: CheckService,
        detector: Detector,
        *,
        health: Server | None = None,
        grace_s: float = 25.0,
    ) -> None:
        self.frontends = list(frontends)
        self.checks = checks
        self.detector = detector
        self.health = health
        self.grace_s = grace_s
        self.ready = False
        self._started: list[Frontend] = []

    async def start(self) -> None:
        if self.health is not None:
            await self.health.start()
        for frontend in self.frontends:
            await frontend.start()
            self._started.append(frontend)
        self.ready = True

    async def stop(self) -> None:
        """Stop intake everywhere, finish in-flight work, then close the detector."""
        self.ready = False
        try:
            async with asyncio.timeout(self.grace_s):
                for frontend in self._started:
                    await frontend.stop_intake()
                await asyncio.gather(*(f.finish() for f in self._started))
                await self.checks.wait_idle()
        except TimeoutError:
            _log.warning("shutdown grace of %.0f s ran out; stopping anyway", self.grace_s)
        self.checks.stop_intake()
        try:
            await self.detector.close()
        finally:
            if self.health is not None:
                await self.health.stop()
        _log.info("stopped")


async def serve(service: Service, stop: asyncio.Event) -> None:
    """Start ``service``, run until ``stop`` is set, then stop it in order."""
    try:
        await service.start()
        _log.info("running; send SIGTERM or SIGINT to stop")
        await stop.wait()
        _log.info("stopping: no new work, finishing in-flight checks")
    finally:
        await service.stop()


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` once; after that they get their default behaviour back."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int) -> None:
        _log.info("received %s", signal.Signals(signum).name)
        stop.set()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
