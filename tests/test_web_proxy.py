"""Behind a reverse proxy (``HTTP_TRUSTED_PROXIES``): the client address the proxy names in
X-Forwarded-For is what the rate limit counts, so clients behind one proxy do not share one
limit; without the setting the header is ignored (a client cannot name itself someone else);
with it, a peer that is not the proxy is refused, and health and metrics stay reachable
directly."""

from __future__ import annotations

import aiohttp
import pytest

from bot.settings import Settings

from .standins.fakes import FakeDetector, always, analysis, jpeg
from .standins.web_harness import WebRun, running_web, web_settings


async def _post(run: WebRun, forwarded_for: str | None) -> int:
    headers = {"Content-Type": "image/jpeg"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with aiohttp.ClientSession() as http, http.post(
        f"{run.url}/v1/check", data=jpeg(), headers=headers
    ) as r:
        await r.read()
        return r.status


async def _get(run: WebRun, path: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{run.url}{path}") as r:
        return r.status


async def test_clients_behind_a_trusted_proxy_are_limited_one_by_one() -> None:
    settings = web_settings(rate_limit_per_minute=1, http_trusted_proxies="127.0.0.1")
    async with running_web(FakeDetector(always(analysis(0.1))), settings) as run:
        statuses = [await _post(run, ip) for ip in ("203.0.113.7", "203.0.113.7", "203.0.113.8")]
    assert statuses == [200, 429, 200]


async def test_without_trusted_proxies_the_header_is_ignored() -> None:
    settings = web_settings(rate_limit_per_minute=1)
    async with running_web(FakeDetector(always(analysis(0.1))), settings) as run:
        statuses = [await _post(run, ip) for ip in ("203.0.113.7", "203.0.113.8")]
    assert statuses == [200, 429]  # one peer, one limit, whatever the header says


async def test_a_peer_that_is_not_the_proxy_is_refused_but_health_is_reachable() -> None:
    settings = web_settings(http_trusted_proxies="10.9.9.9, 192.0.2.0/24")
    detector = FakeDetector(always(analysis(0.1)))
    async with running_web(detector, settings) as run:
        assert await _post(run, "203.0.113.7") == 400  # from 127.0.0.1, not the proxy
        assert await _post(run, None) == 400  # straight to the service, past the proxy
        assert [await _get(run, p) for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
    assert detector.seen == []


def test_the_setting_takes_addresses_and_networks_only() -> None:
    assert web_settings(http_trusted_proxies=" 10.0.0.2, 172.16.0.0/12 ").trusted_proxies == (
        "10.0.0.2", "172.16.0.0/12",
    )  # fmt: skip
    with pytest.raises(ValueError, match="not an IP address"):
        Settings(_env_file=None, http_trusted_proxies="proxy.internal")  # type: ignore[call-arg]
