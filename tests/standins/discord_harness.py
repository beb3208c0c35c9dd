"""Helpers for driving the real Discord adapter against the stand-in, in-process: settings
pointing at the stand-in, and the adapter, core and service around a detector, stopped in
order on exit. The fake detector and sample images are the Telegram harness's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core import ModelCard
from bot.core.detector_port import Detector
from bot.core.urlfetch import AddressPolicy, UrlFetcher, networks
from bot.discord_bot import DiscordBot
from bot.redis_client import SharedRedis
from bot.runner import Service, build_checks
from bot.settings import Settings

from .common import running_service, standin_settings
from .discord_api import DiscordStandIn
from .fakes import FAKE_CONFIG

# Tests may fetch links from the stand-in on loopback; production refuses loopback.
LOOPBACK_POLICY = AddressPolicy(also_allow=networks(["127.0.0.0/8"]), ports=None)


def discord_settings(standin: DiscordStandIn, db: Path, **overrides: Any) -> Settings:
    platform = {
        "discord_token": standin.token,
        "discord_api_url": standin.api_url,
        "discord_gateway_url": standin.gateway_url,
        "discord_settings_db": db,
        "discord_guild_ready_timeout_s": 0.05,
        "discord_connect_timeout_s": 20,
    }
    return standin_settings(platform, overrides)


@dataclass
class Running:
    service: Service
    discord: DiscordBot
    settings: Settings


@asynccontextmanager
async def running_discord(
    settings: Settings,
    detector: Detector,
    *,
    card: ModelCard | None = None,
    policy: AddressPolicy = LOOPBACK_POLICY,
    on_fatal: Callable[[BaseException], None] | None = None,
    redis: SharedRedis | None = None,
) -> AsyncIterator[Running]:
    """The real adapter and core around ``detector``, connected to the stand-in; stopped in
    order (intake, in-flight answers, detector) on exit. With ``redis``, wired as
    ``deepfake-bot run`` wires ``REDIS_URL``: settings and rate limits in Redis."""
    checks = build_checks(settings, detector, redis=redis)
    fetcher = UrlFetcher(
        max_bytes=checks.limits.max_image_bytes,
        timeout_s=checks.limits.download_timeout_s,
        policy=policy,
    )
    bot = DiscordBot(
        settings,
        checks,
        card or ModelCard.from_config(FAKE_CONFIG),
        url_fetcher=fetcher,
        on_fatal=on_fatal,
        redis=redis,
    )
    async with running_service(settings, bot, checks, detector) as service:
        yield Running(service, bot, settings)


def running_discord_on(
    standin: DiscordStandIn,
    db: Path,
    detector: Detector,
    *,
    policy: AddressPolicy = LOOPBACK_POLICY,
    on_fatal: Callable[[BaseException], None] | None = None,
    **overrides: Any,
) -> AbstractAsyncContextManager[Running]:
    """``running_discord`` with ``discord_settings(standin, db, **overrides)``: the bot
    connected to the stand-in, around ``detector``."""
    settings = discord_settings(standin, db, **overrides)
    return running_discord(settings, detector, policy=policy, on_fatal=on_fatal)
