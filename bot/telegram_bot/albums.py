"""Albums: Telegram delivers each picture of an album as its own update, sharing a
``media_group_id``. The collector gathers them for a short quiet window (restarted by each new
part, capped at three windows) and then hands the whole album over once, in message order, so
the bot answers with one combined reply instead of one reply per picture.

Adding a part never blocks the update handler. Album tasks are the collector's own: ``drain``
(at shutdown) hands over every album still collecting and waits until each is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram import Message

_log = logging.getLogger(__name__)

AlbumHandler = Callable[[list[Message]], Awaitable[None]]
MAX_PARTS = 10  # Telegram's own limit; more parts under one id are ignored


@dataclass
class _Album:
    handler: AlbumHandler
    first_at: float
    deadline: float
    messages: list[Message] = field(default_factory=list)
    flush: asyncio.Event = field(default_factory=asyncio.Event)


class AlbumCollector:
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._albums: dict[tuple[int, str], _Album] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False

    @property
    def collecting(self) -> int:
        return len(self._albums)

    def add(self, message: Message, handler: AlbumHandler) -> None:
        """Add one part. ``handler`` (from the first part) receives the finished album."""
        assert message.media_group_id is not None
        now = asyncio.get_running_loop().time()
        key = (message.chat_id, message.media_group_id)
        album = self._albums.get(key)
        if album is None:
            album = _Album(handler, first_at=now, deadline=now + self.wait_s)
            self._albums[key] = album
            task = asyncio.create_task(self._finish(key, album), name=f"album-{key[1]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if len(album.messages) >= MAX_PARTS:
            _log.warning("album with more than %d parts: extra part ignored", MAX_PARTS)
            return
        album.messages.append(message)
        album.deadline = min(now + self.wait_s, album.first_at + 3 * self.wait_s)
        if self._draining:  # shutting down: no more parts will come
            album.flush.set()

    async def _finish(self, key: tuple[int, str], album: _Album) -> None:
        loop = asyncio.get_running_loop()
        while not album.flush.is_set() and (delay := album.deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(album.flush.wait(), delay)
        del self._albums[key]
        messages = sorted(album.messages, key=lambda m: m.message_id)
        try:
            await album.handler(messages)
        except Exception:  # the handler answers errors itself; this is a bug, keep serving
            _log.exception("album handler failed")

    async def drain(self) -> None:
        """Hand over every album still collecting, and wait until all are answered."""
        self._draining = True
        for album in self._albums.values():
            album.flush.set()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
