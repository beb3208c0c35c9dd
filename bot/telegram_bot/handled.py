"""Telegram update ids already answered, remembered across a restart.

Telegram delivers an update again when the bot did not confirm it: after a crash or a kill
(polling: the offset was never sent) or a webhook answer that came too late. Without memory the
bot would answer the same picture twice. :class:`HandledUpdates` keeps the ids of the most
recent ``keep`` updates whose handlers finished, and (with a ``path``) writes them to a small
JSON file, atomically (temporary file, fsync, rename), after each one; a restart reads it back.

An id is recorded when its handlers have *finished* (the reply was sent), so an update that was
still being checked when the process died is answered after the restart rather than lost. The
window left is the moment between a reply and the write. (An album part's handler finishes when
the part is handed to the album collector, before the album's reply.)

Both stores satisfy :class:`UpdateLedger`: this one for one process, and
:class:`bot.telegram_bot.claims.RedisUpdateClaims` for several replicas sharing Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

_log = logging.getLogger(__name__)


class UpdateLedger(Protocol):
    """Which updates this bot has answered (or is answering), asked before handling one."""

    async def claim(self, update_id: int) -> bool:
        """True: handle this update here (then call :meth:`done`); False: it was answered."""

    async def done(self, update_id: int) -> None:
        """Its handlers have finished."""

    def stop_waiting(self) -> None:
        """Shutting down: stop waiting on updates others are answering."""


class HandledUpdates:
    def __init__(self, path: Path | None = None, keep: int = 5000) -> None:
        self.path = path
        self.keep = keep
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._lock = asyncio.Lock()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # a damaged file costs the memory, not the bot
            _log.warning("ignoring unreadable handled-updates file %s: %s", path, exc)
            return
        ids = raw.get("handled") if isinstance(raw, dict) else None
        if isinstance(ids, list):
            for value in ids[-self.keep :]:
                if isinstance(value, int) and not isinstance(value, bool):
                    self._ids[value] = None

    def __contains__(self, update_id: int) -> bool:
        return update_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    async def claim(self, update_id: int) -> bool:
        return update_id not in self._ids

    async def done(self, update_id: int) -> None:
        await self.record(update_id)

    def stop_waiting(self) -> None:
        pass  # one process never waits on another

    async def record(self, update_id: int) -> None:
        self._ids[update_id] = None
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)
        if self.path is not None:
            async with self._lock:
                snapshot = list(self._ids)
                try:
                    await asyncio.to_thread(_write_atomically, self.path, snapshot)
                except OSError as exc:
                    _log.warning("could not save handled update ids to %s: %s", self.path, exc)


def _write_atomically(path: Path, ids: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({"handled": ids}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
