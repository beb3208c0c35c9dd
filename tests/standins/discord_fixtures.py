"""Pytest fixtures for the Discord tests (loaded with ``pytest_plugins``): the stand-in, with
discord.py's two process-wide endpoint knobs saved and restored around each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from bot.settings import Settings

from .discord_api import DiscordStandIn


@pytest.fixture()
async def discord_standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordStandIn]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # The adapter sets these from its settings; monkeypatch puts the originals back after.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    server = DiscordStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
    assert not server.unknown, f"the bot called routes the stand-in does not know: {server.unknown}"


@pytest.fixture()
def settings_db(tmp_path: Path) -> Path:
    return tmp_path / "discord.sqlite3"
