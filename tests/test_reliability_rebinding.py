"""DNS rebinding (issue 16): a name that resolves to a public address when it is checked and to
loopback when the connection is made. The fetcher must connect to the address it checked, with
no second lookup, so the loopback site behind the second answer is never reached."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.core.errors import DownloadFailed, UrlRefused
from bot.core.urlfetch import AddressPolicy, UrlFetcher

from .test_urlfetch import IMAGE, LOOPBACK, fetcher, site  # noqa: F401 - site is a fixture

PUBLIC = "93.184.216.34"  # a global address; unreachable from the test machine


class RebindingResolver(AbstractResolver):
    """First answer: ``first``; every later one: 127.0.0.1."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.asked = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked += 1
        ip = self.first if self.asked == 1 else "127.0.0.1"
        return [ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET,
                              proto=0, flags=0)]  # fmt: skip

    async def close(self) -> None:
        pass


async def test_a_name_rebound_to_loopback_after_the_check_never_reaches_it(site: str) -> None:  # noqa: F811
    port = int(site.rsplit(":", 1)[1])
    names = RebindingResolver(PUBLIC)
    links: UrlFetcher = fetcher(AddressPolicy(ports=None), resolver=names, timeout_s=1.0)
    try:
        with pytest.raises((DownloadFailed, UrlRefused)):
            await links.fetch(f"http://rebind.test:{port}/img.jpg")
    finally:
        await links.close()
    assert names.asked == 1, "one lookup per fetch: the checked answer is the one connected to"


async def test_control_the_second_answer_would_have_reached_the_site(site: str) -> None:  # noqa: F811
    """Control: a resolver answering loopback from the start (allowed here) does reach the
    site, so the refusal above is about the rebinding, not an unreachable port."""
    port = int(site.rsplit(":", 1)[1])
    names = RebindingResolver("127.0.0.1")
    links = fetcher(LOOPBACK, resolver=names)
    try:
        assert await links.fetch(f"http://rebind.test:{port}/img.jpg") == IMAGE
    finally:
        await links.close()
