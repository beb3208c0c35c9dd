"""The safe link fetcher behind ``/check url:``: which addresses it refuses (before connecting),
that it connects to exactly the addresses it checked, and its size, type, redirect and time
limits. Against a real aiohttp server on loopback, which only the tests' policy allows."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.core.errors import DownloadFailed, FileTooLarge, NotAnImage, UrlRefused
from bot.core.urlfetch import AddressPolicy, UrlFetcher, checked_url, is_public, networks

from .standins.fakes import jpeg

IMAGE = jpeg(32, 32)
LOOPBACK = AddressPolicy(also_allow=networks(["127.0.0.0/8"]), ports=None)
MB = 1024 * 1024


@pytest.fixture()
async def site() -> AsyncIterator[str]:
    """A little web site: an image, redirects, a page, large and slow bodies."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/jpeg")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff" * (2 * MB), content_type="image/jpeg")

    async def big_unannounced(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):  # 2.5 MB in chunks, no Content-Length
            await response.write(b"\xff" * 64 * 1024)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=IMAGE, content_type="image/jpeg")

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/img.jpg", image)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/page", page)
    app.router.add_get("/big", big)
    app.router.add_get("/big-unannounced", big_unannounced)
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class FakeResolver(AbstractResolver):
    """Resolves names from a table and records what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=0
            )
            for ip in self.table[host]
        ]

    async def close(self) -> None:
        pass


def fetcher(policy: AddressPolicy = LOOPBACK, **kw: object) -> UrlFetcher:
    options: dict[str, object] = {"max_bytes": MB, "timeout_s": 1.0, "policy": policy}
    options.update(kw)
    return UrlFetcher(**options)  # type: ignore[arg-type]


async def test_fetches_an_image_and_follows_redirects(site: str) -> None:
    links = fetcher()
    try:
        assert await links.fetch(f"{site}/img.jpg") == IMAGE
        assert await links.fetch(f"{site}/redirect?to=/img.jpg") == IMAGE
        ref = links.image_ref(f"{site}/img.jpg")
        assert ref.declared_size is None and await ref.fetch() == IMAGE
    finally:
        await links.close()


@pytest.mark.parametrize(
    ("path", "error", "detail"),
    [
        ("/page", NotAnImage, "text/html"),
        ("/big", FileTooLarge, "2097152 bytes"),  # refused on Content-Length
        ("/big-unannounced", FileTooLarge, "None bytes"),  # refused while streaming
        ("/slow", DownloadFailed, "more than 1 s"),
        ("/missing", DownloadFailed, "HTTP 404"),
        ("/loop", DownloadFailed, "more than 3 redirects"),
        ("/redirect?to=http://10.9.8.7/x.jpg", UrlRefused, "10.9.8.7"),
        ("/redirect?to=ftp://example.org/x.jpg", UrlRefused, "'ftp'"),
    ],
)
async def test_limits_and_refusals(
    site: str, path: str, error: type[Exception], detail: str
) -> None:
    links = fetcher()
    try:
        with pytest.raises(error, match=re.escape(detail)):
            await links.fetch(site + path)
    finally:
        await links.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://localhost/x.jpg",  # a name for loopback: refused after resolving
        "http://[::1]/x.jpg",
        "http://[::ffff:10.0.0.1]/x.jpg",
        "http://0.0.0.0/x.jpg",
        "http://192.168.1.1/x.jpg",
        "http://100.64.0.1/x.jpg",  # carrier-grade NAT
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/x.jpg",  # multicast
        "http://user:secret@example.org/x.jpg",
        "https://example.org:8443/x.jpg",  # only the default ports
        "gopher://example.org/",
        "javascript:alert(1)",
        "not a link",
    ],
)
async def test_production_policy_refuses_before_connecting(url: str) -> None:
    links = fetcher(AddressPolicy())
    try:
        with pytest.raises(UrlRefused):
            await links.fetch(url)
    finally:
        await links.close()


async def test_the_connection_goes_to_the_checked_addresses(site: str) -> None:
    port = site.rsplit(":", 1)[1]
    names = FakeResolver(
        {"images.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "10.0.0.7"]}
    )
    links = fetcher(resolver=names)
    try:
        # The only address "images.test" has is the local site: fetching works, so aiohttp
        # connected where the checking resolver said, not through a lookup of its own.
        assert await links.fetch(f"http://images.test:{port}/img.jpg") == IMAGE
        with pytest.raises(UrlRefused, match=r"10\.0\.0\.7"):  # one bad address spoils the name
            await links.fetch(f"http://mixed.test:{port}/img.jpg")
    finally:
        await links.close()
    assert names.asked == ["images.test", "mixed.test"]


async def test_names_resolving_to_private_addresses_are_refused() -> None:
    names = FakeResolver({"intranet.example.org": ["10.20.30.40"]})
    links = fetcher(AddressPolicy(), resolver=names)
    try:
        with pytest.raises(UrlRefused, match=r"10\.20\.30\.40"):
            await links.fetch("https://intranet.example.org/cat.jpg")
    finally:
        await links.close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("169.254.1.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_checked_url_keeps_public_links() -> None:
    url = checked_url("https://cdn.example.org/a/b.png?x=1", AddressPolicy())
    assert (url.host, url.path, url.query_string) == ("cdn.example.org", "/a/b.png", "x=1")
