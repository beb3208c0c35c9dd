"""One burst through Telegram, Discord and the HTTP API at once, in-process: the real adapters
and core, the stand-ins and the web front on one loop, around a detector with a fixed service
time (one analysis at a time, like the one model thread). Used by
``tests/test_reliability_load.py`` (the counting) and ``scripts/reliability load`` (the
figures)."""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bot.core import ChatSettings, ModelCard
from bot.runner import Service, build_checks, build_frontends
from bot.settings import Settings
from bot.web import Metrics, attach_web
from detector.errors import DetectorBusy, DetectorClosed
from detector.results import Analysis

from ..standins.discord_api import DiscordStandIn
from ..standins.fakes import ANNOTATED, FAKE_CONFIG, analysis, jpeg
from ..standins.telegram_api import TelegramStandIn


class TimedDetector:
    """A verdict after ``service_s`` seconds, one analysis at a time."""

    model_name = FAKE_CONFIG.name

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self._one = asyncio.Semaphore(1)
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with self._one:
                await asyncio.sleep(self.service_s)
                self.calls += 1
        finally:
            self.in_flight -= 1
        result = analysis(0.2)
        return replace(result, annotated_jpeg=ANNOTATED) if annotate else result

    async def analyze_media(
        self,
        data: bytes,
        *,
        annotate: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Analysis:
        """The burst sends pictures only: the media path is the image path here."""
        return await self.analyze(data, annotate=annotate)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Plan:
    users_per_platform: int = 8
    images_per_user: int = 20
    flood_images: int = 60  # one Telegram user sends this many at once
    queue_size: int = 16
    concurrent: int = 4
    rate_per_minute: int = 25
    service_s: float = 0.004


@dataclass
class Outcome:
    """One request: who sent it, on what, what came back (``verdict``/``busy``/``rate``/other),
    how many replies, and the time from sending to its (first) reply."""

    platform: str
    user: str
    kind: str = "none"
    replies: int = 0
    latency_s: float = 0.0


@dataclass
class Report:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mib: float = 0.0
    detector_calls: int = 0
    max_in_flight: int = 0

    def kinds(self, *, flood: bool | None = None) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes
                       if flood is None or (o.user == "flood") == flood)  # fmt: skip

    def figures(self) -> dict[str, Any]:
        answered = sorted(o.latency_s for o in self.outcomes if o.kind in {"verdict", "busy"})

        def pct(p: float) -> float:
            return round(answered[min(len(answered) - 1, int(p * len(answered)))] * 1000, 1)

        kinds = self.kinds()
        return {
            "queue_size": self.plan.queue_size,
            "requests": len(self.outcomes),
            "images_per_s": round(kinds["verdict"] / self.wall_s, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "busy_ratio": round(kinds["busy"] / max(1, len(self.outcomes)), 3),
            "kinds": dict(kinds),
            "peak_rss_mib": self.peak_rss_mib,
        }  # fmt: skip


def _kind(text: str) -> str:
    if "probability of a face manipulation" in text:
        return "verdict"
    if DetectorBusy.user_message in text:
        return "busy"
    if "checks per minute" in text:
        return "rate"
    if DetectorClosed.user_message in text:
        return "closed"
    return "other: " + text[:80]


def settings_for(tg: TelegramStandIn, dc: DiscordStandIn, db: Path, plan: Plan) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_token=tg.token, telegram_api_url=tg.api_url, telegram_file_url=tg.file_url,
        telegram_poll_timeout_s=1, telegram_album_wait_s=0.3, telegram_concurrent_updates=256,
        discord_token=dc.token, discord_api_url=dc.api_url, discord_gateway_url=dc.gateway_url,
        discord_settings_db=db, discord_guild_ready_timeout_s=0.05,
        discord_connect_timeout_s=20,
        http_host="127.0.0.1", http_port=0,
        max_concurrent_checks=plan.concurrent, check_queue_size=plan.queue_size,
        rate_limit_per_minute=plan.rate_per_minute, shutdown_grace_s=15.0,
    )  # fmt: skip


async def run(tmp: Path, plan: Plan, timeout_s: float = 300.0) -> Report:
    tg, dc = TelegramStandIn(), DiscordStandIn()
    await tg.start()
    await dc.start()
    detector = TimedDetector(plan.service_s)
    settings = settings_for(tg, dc, tmp / "discord.sqlite3", plan)
    metrics = Metrics(model={"name": FAKE_CONFIG.name, "input_size": "64", "precision": "fp32",
                             "weights_sha256": "0" * 64})  # fmt: skip
    checks = build_checks(settings, detector, metrics)
    card = ModelCard.from_config(FAKE_CONFIG)
    service = Service(build_frontends(settings, checks, card, ChatSettings()), checks, detector,
                      grace_s=settings.shutdown_grace_s)  # fmt: skip
    web = attach_web(service, settings, card, metrics)
    report = Report(plan)
    try:
        await service.start()
        report = await _burst(tg, dc, web.origin, plan, timeout_s)
    finally:
        await service.stop()
        await tg.close()
        await dc.close()
    report.detector_calls = detector.calls
    report.max_in_flight = detector.max_in_flight
    report.peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


async def _burst(
    tg: TelegramStandIn, dc: DiscordStandIn, origin: str, plan: Plan, timeout_s: float
) -> Report:
    report = Report(plan)
    picture = jpeg(64, 48)
    n = plan.users_per_platform
    started = time.monotonic()

    # Telegram: n users and one flooder, every photo queued at once.
    tg_sent: list[tuple[Outcome, int, int, float]] = []
    users = [(f"tg{i}", 5000 + i) for i in range(n)] + [("flood", 9999)]
    for name, uid in users:
        user = tg.user(uid)
        chat = tg.private_chat(user)
        count = plan.flood_images if name == "flood" else plan.images_per_user
        for _ in range(count):
            msg = tg.message(chat, user, photo=tg.photo_sizes(tg.add_file(picture)))
            await tg.push_update({"message": msg})
            outcome = Outcome("telegram", name)
            tg_sent.append((outcome, chat["id"], msg["message_id"], time.monotonic()))

    # Discord: n users, /check each.
    guild = dc.add_guild()
    channel = dc.channel(guild, "general")
    dc_sent = []
    for i in range(n):
        user = dc.user(f"dc{i}")
        for _ in range(plan.images_per_user):
            at = time.monotonic()
            asked = await dc.check(user, channel, image=dc.attachment(picture, "a.jpg"))
            dc_sent.append((Outcome("discord", f"dc{i}"), asked, at))

    # HTTP: n clients, each from its own loopback address (the API limits by address).
    async def client(i: int) -> list[Outcome]:
        out = []
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{i + 2}", 0))
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def one() -> Outcome:
                outcome = Outcome("http", f"http{i}")
                t0 = time.monotonic()
                async with http.post(f"{origin}/v1/check", data=picture,
                                     headers={"Content-Type": "image/jpeg"}) as r:  # fmt: skip
                    body = await r.json()
                outcome.latency_s = time.monotonic() - t0
                outcome.replies = 1
                outcome.kind = {200: "verdict", 503: "busy", 429: "rate"}.get(
                    r.status, f"other: {r.status} {body}")  # fmt: skip
                return outcome

            out = list(await asyncio.gather(*(one() for _ in range(plan.images_per_user))))
        return out

    http_task = asyncio.gather(*(client(i) for i in range(n)))

    def telegram_done() -> bool:
        return all(tg.replies_to(chat, mid) for _, chat, mid, _ in tg_sent)

    def discord_done() -> bool:
        return all(asked.answers for _, asked, _ in dc_sent)

    deadline = time.monotonic() + timeout_s
    while not (telegram_done() and discord_done()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    http_outcomes = [o for group in await http_task for o in group]
    report.wall_s = time.monotonic() - started
    await asyncio.sleep(1.0)  # a duplicate reply, if one were coming, has time to arrive

    for outcome, chat, mid, at in tg_sent:
        replies = tg.replies_to(chat, mid)
        outcome.replies = len(replies)
        if replies:
            outcome.kind = _kind(replies[0].text)
            outcome.latency_s = replies[0].at - at
        report.outcomes.append(outcome)
    for outcome, asked, at in dc_sent:
        answers = asked.answers
        outcome.replies = len(answers)
        if answers:
            embeds = answers[0].embeds
            text = " ".join(str(e.get("title", "")) + " " + str(e.get("description", ""))
                            for e in embeds) + " " + asked.texts  # fmt: skip
            outcome.kind = _kind(text)
            outcome.latency_s = answers[0].at - at
        report.outcomes.append(outcome)
    report.outcomes.extend(http_outcomes)
    return report
