"""The web front in-process, on a free loopback port, around any detector (the fake one where a
test is about HTTP, the real detector service where it is about the engine), wired the way
``deepfake-bot run`` wires it (``bot.web.attach_web``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.core import ModelCard
from bot.core.detector_port import Detector
from bot.runner import Service, build_checks
from bot.settings import Settings
from bot.web import Metrics, WebServer, attach_web

# The shared fakes, re-exported for the web tests (one import to change when they move).
from .fakes import FakeDetector, always, analysis, jpeg

__all__ = ["FakeDetector", "WebRun", "always", "analysis", "jpeg", "running_web", "web_settings"]

CARD = ModelCard(name="fake detector (tests)", figures={"val AUC": "0.5 (made up)"})


def web_settings(**overrides: Any) -> Settings:
    """Settings for the web front alone, never read from the environment or ``.env``."""
    values: dict[str, Any] = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "rate_limit_per_minute": 1000,
        "shutdown_grace_s": 15.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class WebRun:
    service: Service
    web: WebServer
    metrics: Metrics

    @property
    def url(self) -> str:
        return self.web.origin


@asynccontextmanager
async def running_web(
    detector: Detector,
    settings: Settings | None = None,
    *,
    card: ModelCard = CARD,
    batch_sizes: Callable[[], Mapping[int, int]] | None = None,
) -> AsyncIterator[WebRun]:
    settings = settings or web_settings()
    metrics = Metrics(
        model={"name": card.name, "input_size": "64", "precision": "fp32",
               "weights_sha256": "0" * 64},
        batch_sizes=batch_sizes,
    )  # fmt: skip
    checks = build_checks(settings, detector, metrics)
    service = Service([], checks, detector, grace_s=settings.shutdown_grace_s)
    web = attach_web(service, settings, card, metrics)
    try:
        await service.start()
        yield WebRun(service, web, metrics)
    finally:
        await service.stop()
