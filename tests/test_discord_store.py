"""Per-server Discord settings in SQLite: written before they are believed, read back after a
restart, forgotten with the server, and a file that is not a settings database is refused by
name instead of silently starting with every switch off."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.discord_bot.store import AutoscanAction, GuildSettings, GuildSettingsStore

GUILD, OTHER = 111, 222


async def test_settings_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "discord.sqlite3"
    store = GuildSettingsStore(path)
    await store.open()
    await store.set_autoscan(GUILD, 10, True)
    await store.set_autoscan(GUILD, 11, True)
    await store.set_autoscan(GUILD, 11, False)
    await store.set_threshold(GUILD, 0.55)
    await store.set_action(GUILD, AutoscanAction.REACT)
    await store.set_public(OTHER, True)
    await store.close()

    again = GuildSettingsStore(path)
    await again.open()
    try:
        assert again.get(GUILD) == GuildSettings(
            autoscan_channels=frozenset({10}),
            threshold=0.55,
            autoscan_action=AutoscanAction.REACT,
            public_replies=False,
        )
        assert again.get(OTHER) == GuildSettings(public_replies=True)
        assert again.get(333) == GuildSettings()
        assert again.autoscan_on(GUILD, 10)
        assert again.autoscan_on(GUILD, 99, parent_id=10)  # a thread of a scanned channel
        assert not again.autoscan_on(GUILD, 11) and not again.autoscan_on(OTHER, 10)
        await again.set_threshold(GUILD, None)
        await again.forget_guild(OTHER)
    finally:
        await again.close()

    third = GuildSettingsStore(path)
    await third.open()
    try:
        assert third.get(GUILD).threshold is None and third.get(GUILD).autoscan_channels
        assert third.get(OTHER) == GuildSettings()
    finally:
        await third.close()


async def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    store = GuildSettingsStore(tmp_path / "s.sqlite3")
    await store.open()
    try:
        with pytest.raises(ValueError, match="between 0 and 1"):
            await store.set_threshold(GUILD, 1.5)
        assert store.get(GUILD).threshold is None
    finally:
        await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.set_autoscan(GUILD, 1, True)


@pytest.mark.parametrize("content", [b"this is not a database, it is a text file\n" * 50])
async def test_a_foreign_file_is_refused_by_name(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.sqlite3"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"settings\.sqlite3"):
        await GuildSettingsStore(path).open()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "settings.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(ValueError, match="schema version 7"):
        await GuildSettingsStore(path).open()


async def test_an_unwritable_place_is_refused_by_name(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(ValueError, match=r"data/discord\.sqlite3"):
        await GuildSettingsStore(blocker / "discord.sqlite3").open()
