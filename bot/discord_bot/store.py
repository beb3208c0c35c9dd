"""Per-server (guild) settings that server admins change with ``/deepfake``: which channels are
auto-scanned, the auto-scan threshold and action, and whether ``/check`` answers are public.

Two stores behind one interface (:class:`SettingsStore`), both mirrored in memory so the
message listener reads the mirror on every message without a round-trip; a change is written
first and mirrored only once it is stored, so memory never claims what a restart would forget.

- :class:`GuildSettingsStore` (the default): SQLite (``DISCORD_SETTINGS_DB``) through
  aiosqlite, so the event loop never waits on the disk. One process owns the file (several
  processes on one file, e.g. on a shared volume, are not supported); WAL mode keeps readers
  (backups, an admin's ``sqlite3``) from blocking it.
- :class:`~bot.discord_bot.redis_store.RedisGuildSettingsStore` (with ``REDIS_URL``): for shard
  processes, which must agree because a shard (and its servers) can move between processes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiosqlite

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id INTEGER PRIMARY KEY,
    threshold REAL,
    autoscan_action TEXT NOT NULL DEFAULT 'reply',
    public_replies INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS autoscan_channels (
    channel_id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS autoscan_channels_guild ON autoscan_channels (guild_id);
"""


class AutoscanAction(StrEnum):
    """What auto-scan does with an image at or above the threshold."""

    REPLY = "reply"  # a reply with the verdict embed and the annotated image
    REACT = "react"  # only a reaction on the message; details via the message menu


@dataclass(frozen=True)
class GuildSettings:
    autoscan_channels: frozenset[int] = field(default_factory=frozenset)
    threshold: float | None = None  # None: the model's "likely manipulated" threshold
    autoscan_action: AutoscanAction = AutoscanAction.REPLY
    public_replies: bool = False  # /check and the message menu answer for everyone to see


DEFAULT = GuildSettings()


class SettingsUnavailable(Exception):
    """The settings store could not be reached to save or read a change (its ``str`` is safe
    to show to the admin who asked)."""

    def __init__(self, detail: str) -> None:
        super().__init__("The server settings could not be saved just now; please try again.")
        self.detail = detail  # for the log


class SettingsStore(Protocol):
    """What the adapter needs of a per-server settings store."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def get(self, guild_id: int) -> GuildSettings: ...

    def autoscan_on(
        self, guild_id: int, channel_id: int, parent_id: int | None = None
    ) -> bool: ...

    async def refresh(self, guild_id: int) -> None: ...

    async def set_autoscan(self, guild_id: int, channel_id: int, enabled: bool) -> None: ...

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None: ...

    async def set_action(self, guild_id: int, action: AutoscanAction) -> None: ...

    async def set_public(self, guild_id: int, public: bool) -> None: ...

    async def forget_guild(self, guild_id: int) -> None: ...


class Mirror:
    """The in-memory side both stores share: reads never leave the process."""

    def __init__(self) -> None:
        self._guilds: dict[int, GuildSettings] = {}

    def get(self, guild_id: int) -> GuildSettings:
        return self._guilds.get(guild_id, DEFAULT)

    def autoscan_on(self, guild_id: int, channel_id: int, parent_id: int | None = None) -> bool:
        """Whether a message in ``channel_id`` (a thread of ``parent_id``) is auto-scanned:
        switching a channel on covers its threads too."""
        channels = self.get(guild_id).autoscan_channels
        return channel_id in channels or (parent_id is not None and parent_id in channels)


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be between 0 and 1")


class GuildSettingsStore(Mirror):
    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open (creating it if needed) and load everything. Raises ``ValueError`` naming the
        file when it is not a settings database, rather than starting with every switch off."""
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
        except (OSError, sqlite3.Error) as exc:  # e.g. a read-only directory
            raise ValueError(f"Discord settings database {self.path}: {exc}") from exc
        try:
            version = await _scalar(db, "PRAGMA user_version")
            if version not in (0, SCHEMA_VERSION):
                raise ValueError(f"schema version {version}, this version reads {SCHEMA_VERSION}")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.executescript(_SCHEMA)
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.commit()
            self._guilds = await _load(db)
        except (sqlite3.Error, ValueError) as exc:
            await db.close()
            raise ValueError(f"Discord settings database {self.path}: {exc}") from exc
        self._db = db
        scanned = sum(len(g.autoscan_channels) for g in self._guilds.values())
        _log.info(
            "Discord settings: %d server(s) configured, auto-scan on in %d channel(s)",
            len(self._guilds),
            scanned,
        )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def refresh(self, guild_id: int) -> None:
        """Nothing to do: this process is the only writer, so the mirror is the file."""

    # --- changing (disk first, then memory) -----------------------------------------------------

    async def set_autoscan(self, guild_id: int, channel_id: int, enabled: bool) -> None:
        async with self._lock:
            db = self._need_db()
            if enabled:
                await db.execute(
                    "INSERT OR REPLACE INTO autoscan_channels (channel_id, guild_id) VALUES (?, ?)",
                    (channel_id, guild_id),
                )
            else:
                await db.execute(
                    "DELETE FROM autoscan_channels WHERE channel_id = ?", (channel_id,)
                )
            await db.commit()
            old = self.get(guild_id)
            channels = (
                old.autoscan_channels | {channel_id}
                if enabled
                else old.autoscan_channels - {channel_id}
            )
            self._guilds[guild_id] = replace(old, autoscan_channels=frozenset(channels))

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        check_threshold(threshold)
        await self._update(guild_id, "threshold", threshold, threshold=threshold)

    async def set_action(self, guild_id: int, action: AutoscanAction) -> None:
        await self._update(guild_id, "autoscan_action", action.value, autoscan_action=action)

    async def set_public(self, guild_id: int, public: bool) -> None:
        await self._update(guild_id, "public_replies", int(public), public_replies=public)

    async def forget_guild(self, guild_id: int) -> None:
        """Drop everything about a server (the bot was removed from it)."""
        async with self._lock:
            db = self._need_db()
            await db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            await db.execute("DELETE FROM autoscan_channels WHERE guild_id = ?", (guild_id,))
            await db.commit()
            self._guilds.pop(guild_id, None)

    async def _update(self, guild_id: int, column: str, value: object, **changes: object) -> None:
        assert column in {"threshold", "autoscan_action", "public_replies"}
        async with self._lock:
            db = self._need_db()
            await db.execute(
                "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                (guild_id,),
            )
            await db.execute(
                f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?",  # column: fixed names
                (value, guild_id),
            )
            await db.commit()
            self._guilds[guild_id] = replace(self.get(guild_id), **changes)  # type: ignore[arg-type]

    def _need_db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the settings store is not open")
        return self._db


async def _scalar(db: aiosqlite.Connection, sql: str) -> object:
    async with db.execute(sql) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def _load(db: aiosqlite.Connection) -> dict[int, GuildSettings]:
    guilds: dict[int, GuildSettings] = {}
    async with db.execute(
        "SELECT guild_id, threshold, autoscan_action, public_replies FROM guild_settings"
    ) as cursor:
        async for guild_id, threshold, action, public in cursor:
            guilds[int(guild_id)] = GuildSettings(
                threshold=None if threshold is None else float(threshold),
                autoscan_action=AutoscanAction(action),
                public_replies=bool(public),
            )
    channels: dict[int, set[int]] = {}
    async with db.execute("SELECT guild_id, channel_id FROM autoscan_channels") as cursor:
        async for guild_id, channel_id in cursor:
            channels.setdefault(int(guild_id), set()).add(int(channel_id))
    for guild_id, ids in channels.items():
        guilds[guild_id] = replace(guilds.get(guild_id, DEFAULT), autoscan_channels=frozenset(ids))
    return guilds
