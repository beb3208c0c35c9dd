"""Fetching an image from a link someone gave the bot, without letting them use the bot to
reach places they could not reach themselves (server-side request forgery).

Rules, applied to the first request and to every redirect: ``http``/``https`` only, no user
names or passwords in the link, default ports only (80/443), and every address the host name
resolves to must be public (no loopback, private, link-local, CGNAT, multicast, reserved or
unspecified addresses, IPv4-mapped/NAT64 forms included). The check is made by the resolver
aiohttp connects with, so the connection goes to exactly the addresses that were checked (no
second DNS lookup an attacker could answer differently). Redirects are followed by hand, at
most ``max_redirects``. The body is streamed and abandoned as soon as it passes ``max_bytes``;
the whole fetch, redirects included, has one deadline.

:func:`read_limited` is the streaming part alone, for downloads from trusted platform CDNs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.core.check import ImageRef, kind_of
from bot.core.errors import DownloadFailed, FileTooLarge, UrlRefused

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
MAX_URL_LENGTH: Final = 2048
USER_AGENT: Final = "deepfake-bot/0.1 (checks images for face manipulation)"


@dataclass(frozen=True)
class AddressPolicy:
    """Which destinations a link may lead to. The default is the production policy: public
    addresses on ports 80 and 443. ``also_allow`` adds networks (tests use it for the loopback
    stand-in); ``ports=None`` allows any port. Neither is exposed as a setting."""

    also_allow: tuple[IPNetwork, ...] = ()
    ports: frozenset[int] | None = frozenset({80, 443})

    def permits_address(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.also_allow):
            return True
        return is_public(ip)

    def permits_port(self, port: int) -> bool:
        return self.ports is None or port in self.ports


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses only. IPv6 forms that carry an IPv4
    address (mapped, NAT64, 6to4, Teredo) are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
    return not (
        not ip.is_global
        or ip.is_multicast
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_unspecified
    )


class CheckingResolver(AbstractResolver):
    """Resolves with ``base`` and refuses the host (``UrlRefused``) unless *every* address is
    permitted: a name that resolves to one public and one private address is refused whole."""

    def __init__(self, policy: AddressPolicy, base: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._base is None:
            self._base = aiohttp.ThreadedResolver()
        try:
            results = await self._base.resolve(host, port, family)
        except OSError as exc:
            raise DownloadFailed(f"could not resolve the link's host: {exc}") from exc
        if not results:
            raise DownloadFailed("the link's host has no address")
        for result in results:
            ip = ipaddress.ip_address(result["host"].split("%")[0])
            if not self.policy.permits_address(ip):
                raise UrlRefused(f"host resolves to a non-public address ({ip})")
        return results

    async def close(self) -> None:
        if self._base is not None:
            await self._base.close()


def checked_url(raw: str | URL, policy: AddressPolicy) -> URL:
    """Parse ``raw`` and apply every rule that needs no DNS; raises ``UrlRefused``."""
    if isinstance(raw, str):
        if len(raw) > MAX_URL_LENGTH:
            raise UrlRefused("link too long")
        try:
            url = URL(raw.strip())
        except (ValueError, TypeError) as exc:
            raise UrlRefused(f"not a link: {exc}") from exc
    else:
        url = raw
    if url.scheme not in {"http", "https"}:
        raise UrlRefused(f"scheme {url.scheme!r} refused")
    if not url.host or not url.is_absolute():
        raise UrlRefused("link without a host")
    if url.user is not None or url.password is not None:
        raise UrlRefused("link with credentials refused")
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    if not policy.permits_port(port):
        raise UrlRefused(f"port {port} refused")
    try:
        literal = ipaddress.ip_address(url.host.split("%")[0])
    except ValueError:
        return url  # a host name: the resolver checks its addresses
    if "%" in url.host or not policy.permits_address(literal):
        raise UrlRefused(f"non-public address {url.host}")
    return url


async def read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body of ``response``, refusing (``FileTooLarge``) as soon as it passes
    ``max_bytes``: by its declared length before reading, else while streaming."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise FileTooLarge(declared, max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise FileTooLarge(None, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


class UrlFetcher:
    """Fetches image links under the rules above. One aiohttp session, created on first use
    on the running loop; :meth:`close` releases it."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        max_redirects: int = 3,
        policy: AddressPolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.policy = policy or AddressPolicy()
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def image_ref(self, url: str) -> ImageRef:
        """The core's description of the image behind ``url`` (checked when fetched)."""

        async def fetch() -> bytes:
            return await self.fetch(url)

        return ImageRef(fetch=fetch)

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=CheckingResolver(self.policy, self._resolver),
                limit=32,
                ttl_dns_cache=60,  # only checked answers are ever cached
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # never through a proxy that would resolve names itself
                headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=20),
            )
        return self._session

    async def fetch(self, raw_url: str) -> bytes:
        """The image's bytes. Raises ``UrlRefused``, ``DownloadFailed``, ``FileTooLarge``,
        ``NotAnImage`` or ``NotSupportedMedia``; nothing else."""
        url = checked_url(raw_url, self.policy)
        session = self._session_for_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(session, url)
        except TimeoutError as exc:
            took = f"fetching the link took more than {self.timeout_s:.0f} s"
            raise DownloadFailed(took) from exc
        except aiohttp.ClientError as exc:
            raise DownloadFailed(f"fetching the link failed: {type(exc).__name__}") from exc

    async def _follow(self, session: aiohttp.ClientSession, url: URL) -> bytes:
        for _hop in range(self.max_redirects + 1):
            async with session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise DownloadFailed(f"HTTP {response.status} without a Location")
                    url = checked_url(url.join(URL(location)), self.policy)
                    continue
                if response.status != 200:
                    raise DownloadFailed(f"the link answered HTTP {response.status}")
                refusal = kind_of(response.headers.get("Content-Type"), None)
                if refusal is not None:
                    raise refusal(f"the link serves {response.content_type!r}")
                return await read_limited(response, self.max_bytes)
        raise DownloadFailed(f"more than {self.max_redirects} redirects")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()


def networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings (for tests and tools building an :class:`AddressPolicy`)."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)
