"""Helpers for driving the real Telegram adapter against the stand-in, in-process (the
shared fakes, ``FakeDetector`` among them, are in ``fakes``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.core import ChatSettings, ModelCard
from bot.core.detector_port import Detector
from bot.runner import Service, build_checks
from bot.settings import Settings
from bot.telegram_bot import TelegramBot

from .common import running_service, standin_settings
from .fakes import FAKE_CONFIG
from .telegram_api import TelegramStandIn


def settings_for(standin: TelegramStandIn, **overrides: Any) -> Settings:
    platform = {
        "telegram_token": standin.token,
        "telegram_api_url": standin.api_url,
        "telegram_file_url": standin.file_url,
        "telegram_poll_timeout_s": 2,
        "telegram_album_wait_s": 0.3,
    }
    return standin_settings(platform, overrides)


@dataclass
class Running:
    service: Service
    telegram: TelegramBot
    settings: Settings


@asynccontextmanager
async def running_bot(
    settings: Settings,
    detector: Detector,
    *,
    chat_settings: ChatSettings | None = None,
    card: ModelCard | None = None,
) -> AsyncIterator[Running]:
    """The real adapter and core around ``detector``, polling the stand-in; stopped in order
    (intake, in-flight work, detector) on exit."""
    checks = build_checks(settings, detector)
    telegram = TelegramBot(
        settings,
        checks,
        chat_settings or ChatSettings(),
        card or ModelCard.from_config(FAKE_CONFIG),
    )
    async with running_service(settings, telegram, checks, detector) as service:
        yield Running(service, telegram, settings)


def running_bot_on(
    standin: TelegramStandIn,
    detector: Detector,
    *,
    chat_settings: ChatSettings | None = None,
    **overrides: Any,
) -> AbstractAsyncContextManager[Running]:
    """``running_bot`` with ``settings_for(standin, **overrides)``: the bot polling (or, with
    webhook settings, registered with) the stand-in, around ``detector``."""
    settings = settings_for(standin, **overrides)
    return running_bot(settings, detector, chat_settings=chat_settings)
