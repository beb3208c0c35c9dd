"""Sending replies: a core :class:`~bot.core.replies.Reply` (or an album's replies) becomes
Telegram messages, and a chat action ("typing…") is kept alive while a check runs.

A verdict with an annotated image is one photo message with the verdict as its caption; an
album gets one combined text reply, then its annotated images as one media group. Captions are
limited to 1024 characters and messages to 4096 by Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from telegram import Bot, InputMediaPhoto, Message, ReplyParameters
from telegram.constants import ChatAction, MessageLimit
from telegram.error import TelegramError

from bot.core import Reply, Verdict, combined_text
from bot.telegram_bot.texts import HINTS

_log = logging.getLogger(__name__)

ACTION_EVERY_S = 4.5  # Telegram shows a chat action for 5 s


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _action(bot: Bot, chat_id: int, action: str) -> None:
    try:
        await bot.send_chat_action(chat_id, action)
    except TelegramError as exc:  # cosmetic: never let it fail a check
        _log.debug("chat action %s failed: %s", action, exc)


@contextlib.asynccontextmanager
async def chat_action(bot: Bot, chat_id: int, action: str = ChatAction.TYPING) -> AsyncIterator[None]:
    """Show ``action`` in the chat until the body is done."""

    async def keep_alive() -> None:
        while True:
            await _action(bot, chat_id, action)
            await asyncio.sleep(ACTION_EVERY_S)

    task = asyncio.create_task(keep_alive(), name=f"chat-action-{chat_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send_reply(bot: Bot, chat_id: int, reply: Reply, reply_to: int | None) -> None:
    text = reply.text(HINTS)
    if isinstance(reply, Verdict) and reply.image is not None:
        await _action(bot, chat_id, ChatAction.UPLOAD_PHOTO)
        if len(text) <= MessageLimit.CAPTION_LENGTH:
            await bot.send_photo(
                chat_id, reply.image, caption=text, reply_parameters=_reply_to(reply_to)
            )
            return
        sent = await bot.send_message(
            chat_id, _clip(text, MessageLimit.MAX_TEXT_LENGTH), reply_parameters=_reply_to(reply_to)
        )
        await bot.send_photo(chat_id, reply.image, reply_parameters=_reply_to(sent.message_id))
        return
    await bot.send_message(chat_id, text, reply_parameters=_reply_to(reply_to))


async def send_album_reply(
    bot: Bot, chat_id: int, replies: Sequence[Reply], reply_to: int | None
) -> None:
    """One combined text reply covering every picture, then the annotated pictures."""
    text = _clip(combined_text(replies, HINTS), MessageLimit.MAX_TEXT_LENGTH)
    sent: Message = await bot.send_message(chat_id, text, reply_parameters=_reply_to(reply_to))
    images = [
        (number, reply.image)
        for number, reply in enumerate(replies, start=1)
        if isinstance(reply, Verdict) and reply.image is not None
    ]
    if not images:
        return
    await _action(bot, chat_id, ChatAction.UPLOAD_PHOTO)
    if len(images) == 1:
        number, image = images[0]
        await bot.send_photo(
            chat_id, image, caption=f"Image {number}", reply_parameters=_reply_to(sent.message_id)
        )
        return
    media = [InputMediaPhoto(image, caption=f"Image {number}") for number, image in images]
    await bot.send_media_group(chat_id, media, reply_parameters=_reply_to(sent.message_id))
