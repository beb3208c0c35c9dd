"""Gateway events the bot acts on besides commands: messages (direct messages are checked,
server messages only in channels where auto-scan is on), a server arriving (its settings are
read again) and the removal of a server or a channel (its settings are forgotten). Every
handler answers or logs its own errors.
"""

from __future__ import annotations

import logging

import discord

from bot.discord_bot.checking import Checker, user_key
from bot.discord_bot.store import SettingsStore, SettingsUnavailable

_log = logging.getLogger(__name__)

# Ordinary posts and replies; not joins, pins, boosts, thread starters and other system messages.
_CHECKED_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


class Listener:
    def __init__(self, checker: Checker, store: SettingsStore) -> None:
        self.checker = checker
        self.store = store

    async def on_message(self, message: discord.Message) -> None:
        if (
            not self.checker.accepting
            or message.author.bot  # other bots, webhooks and this bot itself
            or message.type not in _CHECKED_TYPES
        ):
            return
        guild = message.guild
        if guild is not None:
            parent_id = getattr(message.channel, "parent_id", None)
            if not self.store.autoscan_on(guild.id, message.channel.id, parent_id):
                return
        with self.checker.inflight.track():
            try:
                if guild is None:
                    await self.checker.answer_message(message, user_key(message.author))
                else:
                    await self.checker.autoscan(message, guild.id)
            except Exception:  # a bug: log it and keep serving
                _log.exception("unexpected error while handling a Discord message")

    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server arrived on one of this process's shards: with settings shared by several
        processes, it may have moved here, so read its settings again."""
        try:
            await self.store.refresh(guild.id)
        except Exception as exc:  # the settings read at start stay in use
            _log.warning("could not re-read a server's settings: %s", getattr(exc, "detail", exc))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        try:
            await self.store.forget_guild(guild.id)
        except SettingsUnavailable as exc:  # Redis away: an expected outage, not a bug
            _log.warning("could not forget the settings of a server the bot left: %s", exc)
        except Exception:
            _log.exception("could not forget the settings of a server the bot left")
        else:
            _log.info("removed from a server: its settings are deleted")

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if not self.store.autoscan_on(channel.guild.id, channel.id):
            return
        try:
            await self.store.set_autoscan(channel.guild.id, channel.id, False)
        except SettingsUnavailable as exc:
            _log.warning("could not switch off auto-scan for a deleted channel: %s", exc)
        except Exception:
            _log.exception("could not switch off auto-scan for a deleted channel")
