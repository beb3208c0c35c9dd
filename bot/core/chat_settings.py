"""Per-chat switches that chat admins set (today: auto-scan of every picture in a chat).

Keys are platform-qualified chat ids (``"telegram:-1001234"``). Kept in memory; with a path
(``CHAT_SETTINGS_FILE``) also saved as a small JSON file, rewritten atomically on each change
and read at start-up, so switches survive restarts. One process owns the file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path

_log = logging.getLogger(__name__)

_VERSION = 1


class ChatSettings:
    def __init__(self, path: Path | None = None, autoscan: set[str] | None = None) -> None:
        self.path = path
        self._autoscan: set[str] = set(autoscan or ())
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, path: Path | None) -> ChatSettings:
        """Read ``path`` if it exists (raises ``ValueError`` naming the file when it is not a
        settings file, rather than silently forgetting every chat's switches)."""
        if path is None or not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("version") != _VERSION:
                raise ValueError("not a version-1 chat settings object")
            chats = raw.get("autoscan", [])
            if not isinstance(chats, list) or not all(isinstance(c, str) for c in chats):
                raise ValueError("'autoscan' must be a list of chat keys")
        except (OSError, ValueError) as exc:
            raise ValueError(f"chat settings file {path}: {exc}") from exc
        _log.info("chat settings: auto-scan on in %d chat(s)", len(chats))
        return cls(path, set(chats))

    def autoscan(self, chat: str) -> bool:
        return chat in self._autoscan

    async def set_autoscan(self, chat: str, enabled: bool) -> None:
        async with self._lock:
            if enabled:
                self._autoscan.add(chat)
            else:
                self._autoscan.discard(chat)
            if self.path is not None:
                data = {"version": _VERSION, "autoscan": sorted(self._autoscan)}
                await asyncio.to_thread(_write_atomically, self.path, json.dumps(data, indent=1))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
