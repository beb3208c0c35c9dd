"""The Telegram bot's update handlers: thin translations between PTB updates and the core.

Private chats: photos, image files and albums are checked directly. Groups (privacy mode on by
default, so the bot sees commands and replies only): ``/check`` as a reply to a picture, or a
picture captioned ``/check``. With auto-scan switched on by a group admin (the bot must be an
admin to see every message), every picture is checked and the bot speaks up only when a face
looks manipulated or uncertain. Every handler answers its own errors; nothing blocks the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from telegram import Message, Update
from telegram.constants import ChatAction, ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.core import Band, ChatSettings, CheckService, ModelCard, Verdict, is_video
from bot.telegram_bot import texts
from bot.telegram_bot.albums import AlbumCollector
from bot.telegram_bot.media import image_ref
from bot.telegram_bot.progress import ProgressMessage
from bot.telegram_bot.send import Where, chat_action, send_album_reply, send_reply

_log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
_ADMINS = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})


def sender_key(message: Message) -> str:
    """Who is charged for a check: the user, or the chat for anonymous/channel senders."""
    if message.from_user is not None and not message.from_user.is_bot:
        return f"telegram:user:{message.from_user.id}"
    return f"telegram:chat:{message.chat_id}"


def chat_key(chat_id: int) -> str:
    return f"telegram:{chat_id}"


class Handlers:
    def __init__(
        self,
        checks: CheckService,
        chat_settings: ChatSettings,
        card: ModelCard,
        albums: AlbumCollector,
        *,
        download_limit: int,
        progress_after_s: float = 3.0,
        progress_every_s: float = 2.0,
    ) -> None:
        self.checks = checks
        self.progress_after_s = progress_after_s
        self.progress_every_s = progress_every_s
        self.chat_settings = chat_settings
        self.card = card
        self.albums = albums
        self.download_limit = download_limit
        self.help_text = texts.help_text(checks.limits, checks.rate_limiter.limit)

    # --- commands ---------------------------------------------------------------------------

    async def start(self, update: Update, context: Context) -> None:
        await self._answer(update, texts.START)

    async def help(self, update: Update, context: Context) -> None:
        await self._answer(update, self.help_text)

    async def about(self, update: Update, context: Context) -> None:
        await self._answer(update, texts.about_text(self.card))

    async def check_command(self, update: Update, context: Context) -> None:
        """``/check`` as a reply to a picture checks that picture; anything else: usage."""
        message = update.effective_message
        if message is None:
            return
        target = message.reply_to_message
        if target is None:
            await self._answer(update, texts.CHECK_USAGE)
            return
        if image_ref(target, context.bot, self.download_limit) is None:
            await self._answer(update, texts.CHECK_NOTHING)
            return
        await self._check_one(context, message, target)

    async def autoscan(self, update: Update, context: Context) -> None:
        message = update.effective_message
        chat = update.effective_chat
        if message is None or chat is None:
            return
        if chat.type not in {ChatType.GROUP, ChatType.SUPERGROUP}:
            await self._answer(update, texts.AUTOSCAN_PRIVATE)
            return
        key = chat_key(chat.id)
        arg = (context.args or [""])[0].lower()
        if arg not in {"on", "off"}:
            state = "on" if self.chat_settings.autoscan(key) else "off"
            await self._answer(update, texts.AUTOSCAN_USAGE.format(state=state))
            return
        try:
            if not await self._is_admin(context, message):
                await self._answer(update, texts.AUTOSCAN_ADMINS_ONLY)
                return
            if arg == "on" and not await self._sees_all_messages(context, chat.id):
                await self._answer(update, texts.AUTOSCAN_NEEDS_ADMIN)
                return
        except TelegramError as exc:
            _log.warning("auto-scan: could not read chat member status: %s", exc)
            await self._answer(update, "I could not check who the group's admins are. Try again.")
            return
        await self.chat_settings.set_autoscan(key, arg == "on")
        _log.info("auto-scan switched %s in a group", arg)
        await self._answer(update, texts.AUTOSCAN_ON if arg == "on" else texts.AUTOSCAN_OFF)

    # --- pictures ---------------------------------------------------------------------------

    async def private_media(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        if message.media_group_id is not None:
            self.albums.add(message, lambda parts: self._check_album(context, parts))
            return
        await self._check_one(context, message, message)

    async def group_media(self, update: Update, context: Context) -> None:
        """A picture posted in a group: checked when auto-scan is on there."""
        message = update.effective_message
        if message is None or not self.chat_settings.autoscan(chat_key(message.chat_id)):
            return
        if message.media_group_id is not None:
            self.albums.add(message, lambda parts: self._autoscan_album(context, parts))
            return
        await self._autoscan_album(context, [message])

    async def caption_check(self, update: Update, context: Context) -> None:
        """A picture posted in a group with ``/check`` (or ``/check@<this bot>``) as its
        caption."""
        message = update.effective_message
        if message is None or message.caption is None:
            return
        command = message.caption.split(maxsplit=1)[0]
        addressee = command.partition("@")[2]
        if addressee and addressee.lower() != (context.bot.username or "").lower():
            return  # meant for another bot
        await self._check_one(context, message, message)

    async def private_other(self, update: Update, context: Context) -> None:
        await self._answer(update, texts.PRIVATE_FALLBACK)

    async def on_error(self, update: object, context: Context) -> None:
        # Handlers answer their own errors; reaching here is a bug. Log it and keep serving.
        _log.error("unhandled error in a Telegram handler", exc_info=context.error)

    # --- helpers ------------------------------------------------------------------------------

    async def _check_one(self, context: Context, asked: Message, target: Message) -> None:
        """Check the picture in ``target``; reply to ``asked`` (the picture or the command)."""
        ref = image_ref(target, context.bot, self.download_limit)
        if ref is None:
            return
        where = Where.answering(asked)
        if not is_video(ref.mime_type, ref.file_name):
            async with chat_action(context.bot, where):
                reply = await self.checks.check(sender_key(asked), ref)
            await self._send(send_reply(context.bot, where, reply))
            return
        progress = ProgressMessage(
            context.bot, where, after_s=self.progress_after_s, every_s=self.progress_every_s
        )
        async with chat_action(context.bot, where, ChatAction.UPLOAD_VIDEO):
            reply = await self.checks.check(sender_key(asked), ref, on_progress=progress)
            await progress.finish()
        await self._send(send_reply(context.bot, where, reply))

    async def _check_album(self, context: Context, parts: list[Message]) -> None:
        refs = [image_ref(m, context.bot, self.download_limit) for m in parts]
        wanted = [ref for ref in refs if ref is not None]
        if not wanted:
            return
        where = Where.answering(parts[0])
        async with chat_action(context.bot, where):
            replies = await self.checks.check_many(sender_key(parts[0]), wanted)
        await self._send(send_album_reply(context.bot, where, replies))

    async def _autoscan_album(self, context: Context, parts: list[Message]) -> None:
        """Auto-scan stays quiet unless something looks manipulated or uncertain: a group does
        not need a reply to every holiday photo, nor to pictures without faces."""
        chat_id = parts[0].chat_id
        for message in parts:
            ref = image_ref(message, context.bot, self.download_limit)
            if ref is None:
                continue
            reply = await self.checks.check(f"telegram:autoscan:{chat_id}", ref)
            if isinstance(reply, Verdict) and reply.band is not Band.REAL:
                await self._send(send_reply(context.bot, Where.answering(message), reply))
            else:
                _log.debug("auto-scan: nothing to report (%s)", type(reply).__name__)

    async def _is_admin(self, context: Context, message: Message) -> bool:
        if message.sender_chat is not None and message.sender_chat.id == message.chat_id:
            return True  # an anonymous admin, posting as the group itself
        if message.from_user is None:
            return False
        member = await context.bot.get_chat_member(message.chat_id, message.from_user.id)
        return member.status in _ADMINS

    async def _sees_all_messages(self, context: Context, chat_id: int) -> bool:
        if context.bot.can_read_all_group_messages:  # privacy mode off in BotFather
            return True
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
        return member.status in _ADMINS

    async def _answer(self, update: Update, text: str) -> None:
        message = update.effective_message
        if message is not None:
            quote = message.chat.type != ChatType.PRIVATE
            await self._send(message.reply_text(text, do_quote=quote))

    async def _send(self, sending: Awaitable[object]) -> None:
        """Await a send; a reply that cannot be delivered (blocked bot, deleted chat, flood
        control beyond our patience) is logged, not raised into PTB."""
        try:
            await sending
        except TelegramError as exc:
            _log.warning("could not deliver a reply: %s", exc)
