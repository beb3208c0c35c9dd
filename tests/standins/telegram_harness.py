"""Helpers for driving the real Telegram adapter against the stand-in, in-process.

``FakeDetector`` stands in for the detector where a test is about the bot (scripted results and
errors, an optional gate to hold analyses in flight); tests about the whole path use the real
detector service with the tiny generated checkpoint.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from PIL import Image

from bot.core import ChatSettings, ModelCard
from bot.core.detector_port import Detector
from bot.runner import Service, build_checks
from bot.settings import Settings
from bot.telegram_bot import TelegramBot
from detector.config import ModelConfig
from detector.faces import Box
from detector.results import Analysis, FaceResult

from .common import running_service, standin_settings
from .telegram_api import TelegramStandIn

FAKE_CONFIG = ModelConfig(name="fake detector (tests)", thresholds=(0.3, 0.7))


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="JPEG")
    return buf.getvalue()


ANNOTATED = jpeg(80, 60, (10, 200, 10))  # what the fake "draws"


def analysis(*p_fakes: float, width: int = 900, height: int = 600) -> Analysis:
    """An analysis with one face per score, left to right, banded like a real config."""
    faces = []
    step = width // max(len(p_fakes), 1)
    for i, p in enumerate(p_fakes):
        box = Box(i * step + 10, 100, i * step + step - 10, 100 + step - 20)
        faces.append(FaceResult(box, box, p, FAKE_CONFIG.band(p)))
    return Analysis(tuple(faces), width, height, FAKE_CONFIG.name)


Script = Callable[[bytes], Analysis | BaseException]


@dataclass
class FakeDetector:
    """Answers from ``script(data)``; with ``hold`` cleared, every analysis waits for it."""

    script: Script
    model_name: str = FAKE_CONFIG.name

    def __post_init__(self) -> None:
        self.seen: list[bytes] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.entered = asyncio.Event()
        self.closed = False
        self.closed_at = 0.0
        self.in_flight = 0

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        self.seen.append(data)
        self.in_flight += 1
        self.entered.set()
        try:
            await self.hold.wait()
            result = self.script(data)
        finally:
            self.in_flight -= 1
        if isinstance(result, BaseException):
            raise result
        if annotate:
            from dataclasses import replace

            result = replace(result, annotated_jpeg=ANNOTATED)
        return result

    async def close(self) -> None:
        assert self.in_flight == 0, "detector closed while analyses were in flight"
        self.closed = True
        self.closed_at = time.monotonic()


def always(result: Analysis | BaseException) -> Script:
    return lambda data: result


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
