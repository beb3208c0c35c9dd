"""Discord messages → the core's :class:`~bot.core.check.ImageRef`: which attachments and
embeds of a message are images, what Discord declares about them, and how to download them.

Attachments carry their size and content type, so files over the limit or that are not
images are refused before any download. Embedded images (link previews) are fetched through
Discord's media proxy (``proxy_url``), which Discord names in the payload; an embed with only
a third-party ``url`` goes through the :class:`~bot.core.urlfetch.UrlFetcher` and its address
rules. Downloads are streamed and abandoned once over the size limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import aiohttp
import discord
from yarl import URL

from bot.core import DownloadFailed, ImageRef
from bot.core.check import kind_of
from bot.core.urlfetch import UrlFetcher, read_limited

_log = logging.getLogger(__name__)

PLATFORM = "Discord"


class CdnDownloads:
    """Downloads from Discord's CDN and media proxy: URLs that Discord itself put in a payload.
    One aiohttp session, made on first use; :meth:`close` releases it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, url: str) -> bytes:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
            )
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise DownloadFailed(f"Discord CDN answered HTTP {response.status}")
                return await read_limited(response, self.max_bytes)
        except aiohttp.ClientError as exc:
            raise DownloadFailed(f"Discord CDN download failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True)
class Found:
    """An image of a message, ready for the core, with a label to show (its file name)."""

    ref: ImageRef
    label: str


@dataclass
class MessageImages:
    found: list[Found] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # names of files that are not images
    over_limit: int = 0  # images beyond the per-check limit, not checked


class Media:
    def __init__(self, cdn: CdnDownloads, links: UrlFetcher, *, videos: bool = False) -> None:
        self.cdn = cdn
        self.links = links
        self.videos = videos  # video (and GIF) attachments are checked too

    def attachment(self, attachment: discord.Attachment) -> Found:
        """Any attachment; the core refuses non-images and oversized files before download."""
        url = attachment.url

        async def fetch() -> bytes:
            return await self.cdn.fetch(url)

        ref = ImageRef(
            fetch=fetch,
            declared_size=attachment.size,
            mime_type=attachment.content_type,
            file_name=attachment.filename,
        )
        return Found(ref, attachment.filename)

    def link(self, url: str) -> Found:
        return Found(self.links.image_ref(url), _link_label(url))

    def embed_image(self, embed: discord.Embed) -> Found | None:
        """The picture an embed shows (a link preview or an image in a rich embed)."""
        if embed.type in {"video", "gifv"}:
            return None
        media = embed.image if embed.image.url else None
        if media is None and embed.type == "image" and embed.thumbnail.url:
            media = embed.thumbnail  # a bare image link: Discord shows it as the thumbnail
        if media is None or media.url is None:
            return None
        label = _link_label(media.url)
        proxied = media.proxy_url
        if proxied:

            async def fetch() -> bytes:
                return await self.cdn.fetch(proxied)

            return Found(ImageRef(fetch=fetch), label)
        return Found(self.links.image_ref(media.url), label)

    def in_message(self, message: discord.Message, limit: int) -> MessageImages:
        """Every image (with ``videos``: and video) attachment and embedded image of
        ``message``, in order, up to ``limit``; names of attachments that cannot be checked
        are listed as skipped. Video embeds (link previews, GIF pickers) are not fetched."""
        out = MessageImages()
        candidates: list[Found] = []
        for attachment in message.attachments:
            if kind_of(attachment.content_type, attachment.filename, videos=self.videos) is None:
                candidates.append(self.attachment(attachment))
            else:
                out.skipped.append(attachment.filename)
        for embed in message.embeds:
            found = self.embed_image(embed)
            if found is not None:
                candidates.append(found)
        out.found = candidates[:limit]
        out.over_limit = max(0, len(candidates) - limit)
        return out


def _link_label(url: str) -> str:
    try:
        parsed = URL(url)
    except ValueError:
        return "linked image"
    name = PurePosixPath(parsed.path).name
    host = parsed.host or ""
    return f"{name} ({host})" if name and host else name or host or "linked image"
