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
from dataclasses import dataclass
from typing import Any

from telegram import Bot, InputMediaPhoto, Message, ReplyParameters
from telegram.constants import ChatAction, MessageLimit
from telegram.error import TelegramError

from bot.core import Reply, Verdict, combined_text
from bot.core.texts import clip
from bot.telegram_bot.texts import HINTS

_log = logging.getLogger(__name__)

ACTION_EVERY_S = 4.5  # Telegram shows a chat action for 5 s


@dataclass(frozen=True)
class Where:
    """Where a reply goes: the chat, the message it answers, and the forum topic if any."""

    chat_id: int
    reply_to: int | None = None
    thread_id: int | None = None

    @classmethod
    def answering(cls, message: Message) -> Where:
        thread = message.message_thread_id if message.is_topic_message else None
        return cls(message.chat_id, message.message_id, thread)

    def replying_to(self, message_id: int) -> Where:
        return Where(self.chat_id, message_id, self.thread_id)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message_thread_id": self.thread_id}
        if self.reply_to is not None:
            out["reply_parameters"] = ReplyParameters(
                message_id=self.reply_to, allow_sending_without_reply=True
            )
        return out


async def _action(bot: Bot, where: Where, action: str) -> None:
    try:
        await bot.send_chat_action(where.chat_id, action, message_thread_id=where.thread_id)
    except TelegramError as exc:  # cosmetic: never let it fail a check
        _log.debug("chat action %s failed: %s", action, exc)


@contextlib.asynccontextmanager
async def chat_action(
    bot: Bot, where: Where, action: str = ChatAction.TYPING
) -> AsyncIterator[None]:
    """Show ``action`` in the chat until the body is done. A request in flight when the body
    ends is allowed to finish (cancelling it would drop the HTTP connection)."""
    done = asyncio.Event()

    async def keep_alive() -> None:
        while not done.is_set():
            await _action(bot, where, action)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), ACTION_EVERY_S)

    task = asyncio.create_task(keep_alive(), name=f"chat-action-{where.chat_id}")
    try:
        yield
    finally:
        done.set()
        await task


async def send_reply(bot: Bot, where: Where, reply: Reply) -> None:
    text = reply.text(HINTS)
    if isinstance(reply, Verdict) and reply.image is not None:
        await _action(bot, where, ChatAction.UPLOAD_PHOTO)
        if len(text) <= MessageLimit.CAPTION_LENGTH:
            await bot.send_photo(where.chat_id, reply.image, caption=text, **where.params())
            return
        sent = await bot.send_message(
            where.chat_id, clip(text, MessageLimit.MAX_TEXT_LENGTH), **where.params()
        )
        await bot.send_photo(
            where.chat_id, reply.image, **where.replying_to(sent.message_id).params()
        )
        return
    await bot.send_message(where.chat_id, text, **where.params())


async def send_album_reply(bot: Bot, where: Where, replies: Sequence[Reply]) -> None:
    """One combined text reply covering every picture, then the annotated pictures."""
    text = clip(combined_text(replies, HINTS), MessageLimit.MAX_TEXT_LENGTH)
    sent: Message = await bot.send_message(where.chat_id, text, **where.params())
    images = [
        (number, reply.image)
        for number, reply in enumerate(replies, start=1)
        if isinstance(reply, Verdict) and reply.image is not None
    ]
    if not images:
        return
    under = where.replying_to(sent.message_id)
    await _action(bot, where, ChatAction.UPLOAD_PHOTO)
    if len(images) == 1:
        number, image = images[0]
        await bot.send_photo(where.chat_id, image, caption=f"Image {number}", **under.params())
        return
    media = [InputMediaPhoto(image, caption=f"Image {number}") for number, image in images]
    await bot.send_media_group(where.chat_id, media, **under.params())
