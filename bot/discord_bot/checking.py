"""Checking images for Discord users and answering them: interactions (``/check``, the message
menu), direct messages and auto-scan. The one place that runs the core's checks and sends
the rendered embeds.

Interactions are deferred at once (Discord's 3-second rule), privately or publicly per the
server's setting, then answered with follow-ups. Every answer, refusals included, goes through
the core's reply model; Discord errors while answering are logged, never raised into discord.py.
:class:`~bot.core.IdleTracker` counts what is being answered, so shutdown can wait for it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord

from bot.core import Band, CheckService, IdleTracker, ModelCard, Refusal, Reply, Verdict
from bot.core.replies import BAND_EMOJI
from bot.core.texts import clip
from bot.discord_bot import texts
from bot.discord_bot.media import Found, Media, MessageImages
from bot.discord_bot.render import Rendered, files_of, pack, render
from bot.discord_bot.store import AutoscanAction, SettingsStore

_log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what Discord lets bots upload in an unboosted server
MESSAGE_LIMIT = 2000
NO_MENTIONS = discord.AllowedMentions.none()
# What sending to Discord can fail with: an HTTP error, a rate limit longer than
# DISCORD_MAX_RATELIMIT_WAIT_S (discord.py raises instead of waiting), or the network.
SEND_ERRORS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, OSError)


def user_key(user: discord.abc.User) -> str:
    return f"discord:user:{user.id}"


def notes(images: MessageImages, limit: int) -> list[str]:
    """What was left out of a message's check, in words."""
    out = []
    if images.skipped:
        names = ", ".join(f"`{_code_safe(n)}`" for n in images.skipped[:5])
        more = f" and {len(images.skipped) - 5} more" if len(images.skipped) > 5 else ""
        out.append(f"Skipped (not still images): {names}{more}.")
    if images.over_limit:
        out.append(f"Only the first {limit} images were checked ({images.over_limit} not checked).")
    return out


def _code_safe(name: str) -> str:
    """A file name fit to show inside `code` (no backticks to break out of it)."""
    return name.replace("`", "'")[:60]


class Checker:
    def __init__(
        self,
        checks: CheckService,
        store: SettingsStore,
        media: Media,
        card: ModelCard,
        *,
        max_images: int,
    ) -> None:
        self.checks = checks
        self.store = store
        self.media = media
        self.card = card
        self.max_images = max_images
        self.inflight = IdleTracker()
        self.accepting = True

    # --- interactions -----------------------------------------------------------------------------

    def ephemeral(self, interaction: discord.Interaction[Any]) -> bool:
        """Private answers unless the server chose public ones; in DMs it makes no difference
        and the answer stays in the conversation."""
        if interaction.guild_id is None:
            return False
        return not self.store.get(interaction.guild_id).public_replies

    async def say(
        self, interaction: discord.Interaction[Any], text: str, *, ephemeral: bool = True
    ) -> None:
        """A short text answer, as the response or as a follow-up if already responded."""
        text = clip(text, MESSAGE_LIMIT)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(
                    text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.response.send_message(
                    text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
                )
        except SEND_ERRORS as exc:
            _log.warning("could not answer an interaction: %s", exc)

    async def defer(self, interaction: discord.Interaction[Any], *, ephemeral: bool) -> bool:
        """Acknowledge now ("<bot> is thinking…"); False if Discord no longer accepts it."""
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        except discord.NotFound:
            _log.warning("an interaction expired before it was acknowledged (event loop late?)")
            return False
        except SEND_ERRORS as exc:
            _log.warning("could not acknowledge an interaction: %s", exc)
            return False
        return True

    async def answer_interaction(
        self,
        interaction: discord.Interaction[Any],
        found: Sequence[Found],
        *,
        intro: str | None = None,
        link: str | None = None,
    ) -> None:
        """Defer, check every image, then follow up with one embed per image."""
        ephemeral = self.ephemeral(interaction)
        if not await self.defer(interaction, ephemeral=ephemeral):
            return
        rendered = await self._check(user_key(interaction.user), found, link=link)
        limit = interaction.filesize_limit
        for i, batch in enumerate(pack(rendered, max_upload_bytes=limit)):
            extra: dict[str, Any] = {"content": intro} if i == 0 and intro else {}
            try:
                await interaction.followup.send(
                    embeds=[item.embed for item in batch],
                    files=files_of(batch),
                    ephemeral=ephemeral,
                    allowed_mentions=NO_MENTIONS,
                    wait=True,
                    **extra,
                )
            except SEND_ERRORS as exc:
                _log.warning("could not send a check result: %s", exc)
                return

    # --- messages (direct messages, auto-scan) ----------------------------------------------------

    async def answer_message(self, message: discord.Message, sender: str) -> None:
        """Check the images of a direct message and reply to it (a hint when it has none)."""
        images = self.media.in_message(message, self.max_images)
        if not images.found:
            await self._reply(message, content=" ".join([*notes(images, 0), texts.DM_HELP]))
            return
        with contextlib.suppress(*SEND_ERRORS):  # "typing…" is a courtesy
            await message.channel.typing()
        rendered = await self._check(sender, images.found)
        intro = "\n".join(notes(images, self.max_images)) or None
        await self._reply_rendered(message, rendered, intro=intro)

    async def autoscan(self, message: discord.Message, guild_id: int) -> None:
        """Auto-scan stays quiet unless an image scores at or above the server's threshold:
        no answer for unremarkable images, faceless ones, or refusals (those are logged)."""
        images = self.media.in_message(message, self.max_images)
        if not images.found:
            return
        settings = self.store.get(guild_id)
        threshold = settings.threshold if settings.threshold is not None else self.threshold()
        sender = f"discord:autoscan:{message.author.id}"
        refs = [f.ref for f in images.found]
        replies = await self.checks.check_many(sender, refs)
        flagged = [
            (found, reply)
            for found, reply in zip(images.found, replies, strict=True)
            if isinstance(reply, Verdict) and reply.p_fake >= threshold
        ]
        refused = [r.problem.value for r in replies if isinstance(r, Refusal)]
        _log.info(
            "auto-scan: %d image(s), %d flagged, refused: %s",
            len(replies),
            len(flagged),
            ", ".join(refused) or "none",
        )
        if not flagged:
            return
        if settings.autoscan_action is AutoscanAction.REACT:
            # 🟥 when a face is in the "likely manipulated" band, else 🟨 ("have a look"): a
            # server may flag below that band, and a green mark on a flagged image would mislead.
            fake = any(isinstance(r, Verdict) and r.band is Band.FAKE for _, r in flagged)
            emoji = BAND_EMOJI[Band.FAKE if fake else Band.UNCERTAIN]
            try:
                await message.add_reaction(emoji)
            except SEND_ERRORS as exc:
                _log.warning("auto-scan: could not react in %s: %s", message.channel.id, exc)
            return
        rendered = [
            render(reply, number=i, label=found.label, model=self.checks.model_name)
            for i, (found, reply) in enumerate(flagged, start=1)
        ]
        what = "an image" if len(flagged) == 1 else f"{len(flagged)} images"
        await self._reply_rendered(message, rendered, intro=texts.AUTOSCAN_INTRO.format(what=what))

    def threshold(self) -> float:
        """The model's own "likely manipulated" threshold: auto-scan's default."""
        return self.card.thresholds[1]

    # --- helpers ----------------------------------------------------------------------------------

    async def _check(
        self, sender: str, found: Sequence[Found], *, link: str | None = None
    ) -> list[Rendered]:
        started = time.perf_counter()
        replies: list[Reply] = await self.checks.check_many(sender, [f.ref for f in found])
        elapsed = time.perf_counter() - started
        return [
            render(
                reply,
                number=i,
                label=item.label,
                model=self.checks.model_name,
                elapsed_s=elapsed,
                link=link,
            )
            for i, (item, reply) in enumerate(zip(found, replies, strict=True), start=1)
        ]

    async def _reply_rendered(
        self, message: discord.Message, rendered: Sequence[Rendered], *, intro: str | None
    ) -> None:
        limit = message.guild.filesize_limit if message.guild else DEFAULT_UPLOAD_LIMIT
        for i, batch in enumerate(pack(rendered, max_upload_bytes=limit)):
            await self._reply(
                message,
                content=intro if i == 0 else None,
                embeds=[item.embed for item in batch],
                files=files_of(batch),
            )

    async def _reply(self, message: discord.Message, **kwargs: Any) -> None:
        try:
            await message.reply(mention_author=False, allowed_mentions=NO_MENTIONS, **kwargs)
        except SEND_ERRORS as exc:
            _log.warning("could not reply in channel %s: %s", message.channel.id, exc)
