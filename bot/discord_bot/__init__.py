"""The Discord adapter (discord.py): ``/check``, the "Check for deepfake" message menu,
opt-in auto-scan per channel and direct messages, on the platform-neutral core in
:mod:`bot.core`. Named ``discord_bot`` so it never shadows the ``discord`` library."""

from bot.discord_bot.adapter import DiscordBot

__all__ = ["DiscordBot"]
