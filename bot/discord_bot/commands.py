"""The Discord application commands: ``/check``, the **Check for deepfake** message menu,
``/about``, and ``/deepfake`` for server admins (auto-scan, threshold, reply visibility,
status).

``/deepfake`` is registered with Manage Server as its default permission and for servers only:
Discord itself hides and refuses it for everyone else, and server admins can grant it to other
roles (Server Settings → Integrations). The callbacks are thin: they turn options into the
checker's and the settings store's calls and answer in words from :mod:`texts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import discord
from discord import app_commands

from bot.discord_bot import texts
from bot.discord_bot.checking import Checker, notes
from bot.discord_bot.media import Found, Media
from bot.discord_bot.store import AutoscanAction, SettingsStore, SettingsUnavailable

_log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]

# Where the user-facing commands can be used: servers and the bot's own DMs (installed to a
# server; not as a user app, which would need different answers in other people's DMs).
EVERYWHERE = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)
SERVERS = app_commands.AppCommandContext(guild=True)
INSTALLS = app_commands.AppInstallationType(guild=True, user=False)
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


@dataclass
class IntentState:
    """Whether the bot receives message content (attachments, links) in server channels:
    asked for by ``DISCORD_MESSAGE_CONTENT``, and granted unless Discord refused it."""

    requested: bool
    granted: bool


class Handlers:
    def __init__(
        self,
        checker: Checker,
        media: Media,
        store: SettingsStore,
        intents: IntentState,
        *,
        url_checks: bool,
        about: str,
    ) -> None:
        self.checker = checker
        self.media = media
        self.store = store
        self.intents = intents
        self.url_checks = url_checks
        self.about_text = about

    async def _refuse_when_stopping(self, interaction: Interaction) -> bool:
        if self.checker.accepting:
            return False
        await self.checker.say(interaction, texts.SHUTTING_DOWN)
        return True

    # --- everyone -------------------------------------------------------------------------------

    async def check(
        self,
        interaction: Interaction,
        image: discord.Attachment | None,
        url: str | None,
    ) -> None:
        with self.checker.inflight.track():
            if await self._refuse_when_stopping(interaction):
                return
            found: list[Found] = []
            if image is not None:
                found.append(self.media.attachment(image))
            if url:
                if not self.url_checks:
                    await self.checker.say(interaction, texts.URL_DISABLED)
                    return
                found.append(self.media.link(url))
            if not found:
                await self.checker.say(interaction, texts.CHECK_NOTHING)
                return
            await self.checker.answer_interaction(interaction, found)

    async def check_message(self, interaction: Interaction, message: discord.Message) -> None:
        with self.checker.inflight.track():
            if await self._refuse_when_stopping(interaction):
                return
            images = self.media.in_message(message, self.checker.max_images)
            if not images.found:
                await self.checker.say(interaction, texts.MENU_NOTHING)
                return
            n = len(images.found)
            intro = [
                f"Checked {n} image{'s' if n != 1 else ''} from {message.jump_url}",
                *notes(images, self.checker.max_images),
            ]
            await self.checker.answer_interaction(
                interaction, images.found, intro="\n".join(intro), link=message.jump_url
            )

    async def about(self, interaction: Interaction) -> None:
        await self.checker.say(interaction, self.about_text)

    # --- server admins ----------------------------------------------------------------------

    async def autoscan(self, interaction: Interaction, state: str, action: str | None) -> None:
        guild_id, channel = interaction.guild_id, interaction.channel
        if guild_id is None or channel is None:
            await self.checker.say(interaction, "Auto-scan is set per server channel.")
            return
        mention = getattr(channel, "mention", "this channel")
        if state == "off":
            await self.store.set_autoscan(guild_id, channel.id, False)
            _log.info("auto-scan switched off in a channel of a server")
            await self.checker.say(interaction, texts.AUTOSCAN_OFF.format(channel=mention))
            return
        if action is not None:
            await self.store.set_action(guild_id, AutoscanAction(action))
        await self.store.set_autoscan(guild_id, channel.id, True)
        _log.info("auto-scan switched on in a channel of a server")
        settings = self.store.get(guild_id)
        threshold = settings.threshold or self.checker.threshold()
        lines = [
            texts.AUTOSCAN_ON.format(
                channel=mention,
                action=texts.ACTION_WORDS[settings.autoscan_action.value],
                threshold=texts.percent(threshold),
            )
        ]
        missing = _missing_permissions(interaction, channel, settings.autoscan_action)
        if missing:
            why = "answer here" if settings.autoscan_action is AutoscanAction.REPLY else "react"
            lines.append(texts.MISSING_PERMISSIONS.format(names=", ".join(missing), why=why))
        if not self.intents.granted:
            lines.append(texts.INTENT_MISSING)
        await self.checker.say(interaction, "\n\n".join(lines))

    async def threshold(self, interaction: Interaction, percent: int | None) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None  # the group is for servers only
        default = texts.percent(self.checker.threshold())
        if percent is None:
            await self.store.set_threshold(guild_id, None)
            await self.checker.say(interaction, texts.THRESHOLD_RESET.format(default=default))
            return
        await self.store.set_threshold(guild_id, percent / 100)
        await self.checker.say(
            interaction, texts.THRESHOLD_SET.format(threshold=f"{percent}%", default=default)
        )

    async def replies(self, interaction: Interaction, visibility: str) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        public = visibility == "public"
        await self.store.set_public(guild_id, public)
        await self.checker.say(
            interaction, texts.REPLIES_SET.format(mode=texts.REPLIES_WORDS[public])
        )

    async def status(self, interaction: Interaction) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        settings = self.store.get(guild_id)
        channels = sorted(settings.autoscan_channels)
        threshold = settings.threshold or self.checker.threshold()
        lines = [
            "**Auto-scan:** "
            + (", ".join(f"<#{c}>" for c in channels) if channels else "off in every channel"),
            f"**Auto-scan flags:** {texts.percent(threshold)} and above"
            + ("" if settings.threshold is not None else " (the model's default)"),
            f"**Auto-scan action:** {texts.ACTION_WORDS[settings.autoscan_action.value]}",
            f"**/check answers:** {texts.REPLIES_WORDS[settings.public_replies]}",
            "**Message Content intent:** "
            + ("granted" if self.intents.granted else "missing: auto-scan cannot see images"),
            f"**Model:** {self.checker.checks.model_name}",
        ]
        await self.checker.say(interaction, "\n".join(lines))

    # --- errors -----------------------------------------------------------------------------------

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        """Handlers answer their own errors; reaching here is a bug (log it with the traceback,
        apologise, keep serving), or the settings store being unreachable (say so)."""
        command = interaction.command.qualified_name if interaction.command else "?"
        original = getattr(error, "original", None)
        if isinstance(original, SettingsUnavailable):
            _log.warning("the Discord command %r could not save: %s", command, original.detail)
            await self.checker.say(interaction, str(original))
            return
        _log.error("unhandled error in the Discord command %r", command, exc_info=error)
        await self.checker.say(interaction, texts.APOLOGY)


# A reply (a message referencing another) and a reaction both need Read Message History.
_NEEDED = {
    AutoscanAction.REPLY: (
        "view_channel",
        "send_messages",
        "read_message_history",
        "embed_links",
        "attach_files",
    ),
    AutoscanAction.REACT: ("view_channel", "read_message_history", "add_reactions"),
}


def _missing_permissions(
    interaction: Interaction, channel: Any, action: AutoscanAction
) -> list[str]:
    """The bot's own permissions in the channel (``app_permissions`` from the interaction)
    that auto-scan needs and does not have, as Discord names them."""
    have = interaction.app_permissions
    needed = list(_NEEDED[action])
    if isinstance(channel, discord.Thread) and "send_messages" in needed:
        needed[needed.index("send_messages")] = "send_messages_in_threads"
    return [name.replace("_", " ").title() for name in needed if not getattr(have, name)]


AppCommand = app_commands.Command[Any, ..., None] | app_commands.ContextMenu | app_commands.Group


def build_commands(h: Handlers) -> list[AppCommand]:
    """Every application command, bound to ``h``; the tree registers and syncs them."""

    @app_commands.command(name="check", description=texts.CHECK_DESCRIPTION)
    @app_commands.describe(image=texts.IMAGE_OPTION, url=texts.URL_OPTION)
    async def check(
        interaction: Interaction,
        image: discord.Attachment | None = None,
        url: app_commands.Range[str, 1, 2048] | None = None,
    ) -> None:
        await h.check(interaction, image, url)

    check.allowed_contexts = EVERYWHERE
    check.allowed_installs = INSTALLS

    async def check_message(interaction: Interaction, message: discord.Message) -> None:
        await h.check_message(interaction, message)

    menu = app_commands.ContextMenu(
        name=texts.MENU_NAME,
        callback=check_message,
        allowed_contexts=EVERYWHERE,
        allowed_installs=INSTALLS,
    )

    @app_commands.command(name="about", description=texts.ABOUT_DESCRIPTION)
    async def about(interaction: Interaction) -> None:
        await h.about(interaction)

    about.allowed_contexts = EVERYWHERE
    about.allowed_installs = INSTALLS

    return [check, menu, about, AdminGroup(h)]


class AdminGroup(
    app_commands.Group,
    name="deepfake",
    description=texts.ADMIN_DESCRIPTION,
    guild_only=True,
    default_permissions=ADMIN_PERMISSIONS,
):
    def __init__(self, handlers: Handlers) -> None:
        super().__init__(allowed_contexts=SERVERS, allowed_installs=INSTALLS)
        self.h = handlers

    @app_commands.command(name="autoscan", description=texts.AUTOSCAN_DESCRIPTION)
    @app_commands.describe(
        state="on: check every image posted in this channel; off: stop",
        action="reply with the verdict (default) or only react to flagged images",
    )
    async def autoscan(
        self,
        interaction: Interaction,
        state: Literal["on", "off"],
        action: Literal["reply", "react"] | None = None,
    ) -> None:
        await self.h.autoscan(interaction, state, action)

    @app_commands.command(name="threshold", description=texts.THRESHOLD_DESCRIPTION)
    @app_commands.describe(percent="1-99; leave out to go back to the model's default")
    async def threshold(
        self, interaction: Interaction, percent: app_commands.Range[int, 1, 99] | None = None
    ) -> None:
        await self.h.threshold(interaction, percent)

    @app_commands.command(name="replies", description=texts.REPLIES_DESCRIPTION)
    @app_commands.describe(visibility="public: everyone sees answers; private: only the asker")
    async def replies(
        self, interaction: Interaction, visibility: Literal["public", "private"]
    ) -> None:
        await self.h.replies(interaction, visibility)

    @app_commands.command(name="status", description=texts.STATUS_DESCRIPTION)
    async def status(self, interaction: Interaction) -> None:
        await self.h.status(interaction)
