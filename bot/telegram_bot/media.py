"""Telegram messages → :class:`~bot.core.check.ImageRef`: which media a message carries (photo,
file, video, animation, video note), what its declared size and type are, and how to download
it through the Bot API.

Photos are Telegram's recompressed JPEGs (largest size last, about 1280 px); a picture sent
"as a file" is a document carrying the original bytes. Files over the Bot API's download limit
(20 MB on api.telegram.org) are refused before any request; ``getFile`` answering "file is too
big" is mapped the same way.
"""

from __future__ import annotations

import functools
import logging

from telegram import Bot, Message
from telegram.error import BadRequest, TelegramError

from bot.core.check import ImageRef
from bot.core.errors import DownloadFailed, FileTooLarge

_log = logging.getLogger(__name__)

PLATFORM = "Telegram"


def _is_too_big(exc: BadRequest) -> bool:
    return "file is too big" in exc.message.lower()


async def download(bot: Bot, file_id: str, limit: int) -> bytes:
    """The file's bytes, or ``DownloadFailed``/``FileTooLarge`` (never a Telegram error)."""
    try:
        tg_file = await bot.get_file(file_id)
    except BadRequest as exc:
        if _is_too_big(exc):
            raise FileTooLarge(None, limit, platform_limit=PLATFORM) from exc
        raise DownloadFailed(f"getFile: {exc.message}") from exc
    except TelegramError as exc:
        raise DownloadFailed(f"getFile: {exc}") from exc
    if tg_file.file_size is not None and tg_file.file_size > limit:
        raise FileTooLarge(tg_file.file_size, limit, platform_limit=PLATFORM)
    try:
        data = await tg_file.download_as_bytearray()
    except TelegramError as exc:
        raise DownloadFailed(f"download: {exc}") from exc
    return bytes(data)


def image_ref(message: Message, bot: Bot, download_limit: int) -> ImageRef | None:
    """The picture (or refusable media) in ``message``; ``None`` when it carries none."""
    if message.photo:
        size = message.photo[-1]  # largest last
        return ImageRef(
            fetch=functools.partial(download, bot, size.file_id, download_limit),
            declared_size=size.file_size,
            mime_type="image/jpeg",
            compressed=True,
            download_limit=download_limit,
            platform=PLATFORM,
        )
    if message.document is not None:
        doc = message.document
        return ImageRef(
            fetch=functools.partial(download, bot, doc.file_id, download_limit),
            declared_size=doc.file_size,
            mime_type=doc.mime_type,
            file_name=doc.file_name,
            download_limit=download_limit,
            platform=PLATFORM,
        )
    video = message.video or message.animation or message.video_note
    if video is not None:
        # Videos, animations (Telegram sends GIFs as MP4) and round video notes: checked per
        # face track when the core has videos on, else refused before any download.
        mime = getattr(video, "mime_type", None) or "video/mp4"  # video notes declare none
        return ImageRef(
            fetch=functools.partial(download, bot, video.file_id, download_limit),
            declared_size=video.file_size,
            mime_type=mime if mime.startswith("video/") else "video/mp4",
            download_limit=download_limit,
            platform=PLATFORM,
        )
    return None
