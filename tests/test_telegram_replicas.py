"""Two Telegram replicas in webhook mode behind a (test-played) load balancer, sharing one real
redis-server and one Bot API stand-in: an update delivered to both is answered once, distinct
updates spread over both are each answered once, one user's flood spread over both meets one
shared limit (another user unaffected), and with Redis killed mid-run both still answer, with
a warning (fail-open).

The replicas run in-process, each with its own adapter, webhook server, check service and Redis
connection, built by the runner's own ``build_checks``/``build_frontends``: two ``run``
subprocesses would each load torch and a checkpoint, tens of seconds on the two shared test
cores, for nothing the stores see differently. (test_telegram_redis_run.py starts ``run`` with
``REDIS_URL`` once, for the wiring.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core import ChatSettings, ModelCard
from bot.redis_client import connect
from bot.runner import build_checks, build_frontends
from bot.telegram_bot.webhook import SECRET_HEADER

from .standins.common import free_port, running_service
from .standins.fakes import FAKE_CONFIG, FakeDetector, always, analysis, jpeg
from .standins.redis_fixtures import redis_url
from .standins.redis_server import redis_server
from .standins.telegram_api import Call, TelegramStandIn
from .standins.telegram_harness import settings_for

pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")
__all__ = ["redis_url"]  # the fixture, imported for pytest

SECRET = "replicas-secret_token"
_update_ids = itertools.count(5000)


@dataclass
class Replica:
    url: str
    detector: FakeDetector


@asynccontextmanager
async def replica(
    standin: TelegramStandIn, redis: str, prefix: str, **overrides: Any
) -> AsyncIterator[Replica]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    settings = settings_for(
        standin,
        telegram_mode="webhook",
        telegram_webhook_url=url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
        redis_url=redis,
        redis_prefix=prefix,
        **overrides,
    )
    assert settings.redis_url is not None
    shared = await connect(settings.redis_url, settings.redis_prefix)
    detector = FakeDetector(always(analysis(0.9)))
    checks = build_checks(settings, detector, redis=shared)
    card = ModelCard.from_config(FAKE_CONFIG)
    [telegram] = build_frontends(settings, checks, card, ChatSettings(), redis=shared)
    try:
        async with running_service(settings, telegram, checks, detector):
            yield Replica(url, detector)
    finally:
        await shared.close()


@asynccontextmanager
async def two_replicas(
    standin: TelegramStandIn, redis: str, **overrides: Any
) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"  # the module's server is shared between tests
    async with (
        replica(standin, redis, prefix, **overrides) as a,
        replica(standin, redis, prefix, **overrides) as b,
    ):
        yield a, b


def photo_update(standin: TelegramStandIn, user: dict[str, Any]) -> dict[str, Any]:
    msg = standin.message(
        standin.private_chat(user), user, photo=standin.photo_sizes(standin.add_file(jpeg()))
    )
    return {"update_id": next(_update_ids), "message": msg}


async def deliver(http: aiohttp.ClientSession, to: Replica, update: dict[str, Any]) -> None:
    """POST ``update`` to a replica's webhook, as Telegram (or the load balancer) would."""
    async with http.post(to.url, json=update, headers={SECRET_HEADER: SECRET}) as r:
        assert r.status == 200


def replies(standin: TelegramStandIn, update: dict[str, Any]) -> list[Call]:
    msg = update["message"]
    return standin.replies_to(msg["chat"]["id"], msg["message_id"])


async def settled(standin: TelegramStandIn, updates: list[dict[str, Any]]) -> None:
    """Until every update has a reply, then a little longer so late second answers show."""
    async with asyncio.timeout(20):
        while not all(replies(standin, u) for u in updates):
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # more than a waiting copy's poll interval


async def test_the_same_update_delivered_to_both_is_answered_once(
    standin: TelegramStandIn, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.telegram_bot")
    async with two_replicas(standin, redis_url) as (a, b), aiohttp.ClientSession() as http:
        updates = [photo_update(standin, standin.user()) for _ in range(3)]
        for update in updates:  # each one to both replicas at once
            await asyncio.gather(deliver(http, a, update), deliver(http, b, update))
        await settled(standin, updates)
    assert [len(replies(standin, u)) for u in updates] == [1, 1, 1]
    assert len(a.detector.seen) + len(b.detector.seen) == 3
    dropped = [r for r in caplog.records if "was already answered" in r.getMessage()]
    assert len(dropped) == 3  # every second copy was seen and dropped, not lost in transit


async def test_distinct_updates_spread_over_both_are_each_answered_once(
    standin: TelegramStandIn, redis_url: str
) -> None:
    async with two_replicas(standin, redis_url) as (a, b), aiohttp.ClientSession() as http:
        updates = [photo_update(standin, standin.user(2000 + i)) for i in range(8)]
        await asyncio.gather(*(deliver(http, (a, b)[i % 2], u) for i, u in enumerate(updates)))
        await settled(standin, updates)
    assert [len(replies(standin, u)) for u in updates] == [1] * 8
    assert len(a.detector.seen) == len(b.detector.seen) == 4  # both did share the work


async def test_one_users_flood_over_both_replicas_meets_one_shared_limit(
    standin: TelegramStandIn, redis_url: str
) -> None:
    flooder, bystander = standin.user(3001, "Flo"), standin.user(3002, "Bea")
    async with (
        two_replicas(standin, redis_url, rate_limit_per_minute=3) as (a, b),
        aiohttp.ClientSession() as http,
    ):
        flood = [photo_update(standin, flooder) for _ in range(8)]
        await asyncio.gather(*(deliver(http, (a, b)[i % 2], u) for i, u in enumerate(flood)))
        other = photo_update(standin, bystander)
        await deliver(http, b, other)
        await settled(standin, [*flood, other])
    answers = [replies(standin, u) for u in flood]
    assert all(len(r) == 1 for r in answers)
    verdicts = [r[0] for r in answers if r[0].method == "sendPhoto"]
    refusals = [r[0] for r in answers if r[0].method == "sendMessage"]
    assert len(verdicts) == 3, [r[0].text for r in answers]  # 3 in all, not 3 per replica
    assert len(refusals) == 5
    assert all("limit of 3 checks per minute" in r.text for r in refusals)
    [answer] = replies(standin, other)
    assert answer.method == "sendPhoto"  # another user's budget is their own


async def test_with_redis_killed_mid_run_both_replicas_still_answer(
    standin: TelegramStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with contextlib.ExitStack() as server:
        url = server.enter_context(redis_server(tmp_path))
        async with two_replicas(standin, url) as (a, b), aiohttp.ClientSession() as http:
            before = photo_update(standin, standin.user())
            await deliver(http, a, before)
            await settled(standin, [before])
            server.close()  # redis-server stopped: both replicas lose it at once
            with caplog.at_level(logging.WARNING):
                after = [photo_update(standin, standin.user(4000 + i)) for i in range(2)]
                await deliver(http, a, after[0])
                await deliver(http, b, after[1])
                await settled(standin, after)
    assert [len(replies(standin, u)) for u in [before, *after]] == [1, 1, 1]
    assert all(replies(standin, u)[0].method == "sendPhoto" for u in after)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("without de-duplication: Redis failed" in w for w in warnings) == 2, warnings
    assert sum("rate limit not enforced: Redis failed" in w for w in warnings) == 2, warnings
