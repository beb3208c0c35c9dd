"""The progress message of a long video check: sent once the check has taken ``after_s``,
then edited (at most every ``every_s``) as frames are checked, "checked 12 of 32 frames…".

The detector reports progress through a plain callback on the event loop; sends and edits run
as tasks, one at a time, and a failed one is only logged: progress is cosmetic and never fails
a check.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.core import video_progress
from bot.telegram_bot.send import Where

_log = logging.getLogger(__name__)


class ProgressMessage:
    def __init__(self, bot: Bot, where: Where, *, after_s: float, every_s: float) -> None:
        self.bot = bot
        self.where = where
        self.after_s = after_s
        self.every_s = every_s
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._message_id: int | None = None
        self._shown: tuple[int, int] | None = None
        self._latest: tuple[int, int] | None = None
        self._last_update = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def message_id(self) -> int | None:
        return self._message_id

    def __call__(self, done: int, total: int) -> None:
        self._latest = (done, total)
        now = self._loop.time()
        if now - self._started < self.after_s:
            return
        if self._task is not None and not self._task.done():
            return  # the latest count is shown when that one is through, or by finish()
        if self._message_id is not None and now - self._last_update < self.every_s:
            return
        self._task = self._loop.create_task(self._show(), name="telegram-progress")

    async def finish(self) -> None:
        """Wait for a send or edit in flight; show the final count if a message was sent."""
        if self._task is not None:
            await self._task
        if self._message_id is not None and self._latest != self._shown:
            await self._show()

    async def _show(self) -> None:
        latest = self._latest
        if latest is None or latest == self._shown:
            return
        text = video_progress(*latest)
        try:
            if self._message_id is None:
                sent = await self.bot.send_message(
                    self.where.chat_id, text, **self.where.params()
                )
                self._message_id = sent.message_id
            else:
                await self.bot.edit_message_text(
                    text, chat_id=self.where.chat_id, message_id=self._message_id
                )
        except TelegramError as exc:
            _log.debug("progress message not updated: %s", exc)
            return
        self._shown = latest
        self._last_update = self._loop.time()
