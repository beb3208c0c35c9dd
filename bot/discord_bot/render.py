"""Core replies → Discord embeds: a colour-coded embed per image (green / amber / red for the
three verdict bands, grey when there is no verdict), per-face fields, the annotated image as an
attachment the embed shows, the model name and the time taken.

Embeds are packed into as few messages as Discord allows: at most 10 embeds, 6000 embed
characters and the upload size limit per message; anything longer is clipped, never dropped
silently (an annotated image that does not fit is left out and the embed says so).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.core import Band, Refusal, Reply, Verdict, VideoVerdict
from bot.core.replies import CAVEAT, too_small_line
from bot.core.texts import clip
from bot.discord_bot import texts

COLOURS: dict[Band, discord.Colour] = {
    Band.REAL: discord.Colour(0x2ECC71),  # green
    Band.UNCERTAIN: discord.Colour(0xF1C40F),  # amber
    Band.FAKE: discord.Colour(0xE74C3C),  # red
}
NO_VERDICT = discord.Colour(0x95A5A6)  # grey

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
TITLE, DESCRIPTION, FIELDS, FIELD_NAME, FIELD_VALUE = 256, 4096, 25, 256, 1024
FOOTER, AUTHOR, TOTAL, EMBEDS_PER_MESSAGE, FILES_PER_MESSAGE = 2048, 256, 6000, 10, 10
MAX_FACE_FIELDS = FIELDS - 1


@dataclass
class Rendered:
    """One image's embed and, for a verdict, its annotated image."""

    embed: discord.Embed
    image: bytes | None = None
    filename: str | None = None

    def file(self) -> discord.File | None:
        if self.image is None or self.filename is None:
            return None
        return discord.File(io.BytesIO(self.image), filename=self.filename)

    def drop_image(self) -> None:
        self.image = None
        self.filename = None
        self.embed.set_image(url=None)
        note = "(The annotated image was too large to attach.)"
        self.embed.description = clip(f"{self.embed.description or ''}\n{note}", DESCRIPTION)


def render(
    reply: Reply,
    *,
    number: int = 1,
    label: str | None = None,
    model: str | None = None,
    elapsed_s: float | None = None,
    link: str | None = None,
) -> Rendered:
    """``number`` keeps attachment names unique within a message; ``label`` names the image
    (a file name), ``link`` makes the title jump to the checked message."""
    if isinstance(reply, Verdict):
        rendered = _verdict(reply, number, model, elapsed_s)
    else:
        rendered = _refusal(reply)
    if label:
        rendered.embed.set_author(name=clip(label, AUTHOR))
    if link:
        rendered.embed.url = link
    return rendered


def _verdict(verdict: Verdict, number: int, model: str | None, elapsed_s: float | None) -> Rendered:
    embed = discord.Embed(
        title=clip(verdict.headline, TITLE),
        colour=COLOURS[verdict.band],
        description=clip(_description(verdict), DESCRIPTION),
    )
    scores = verdict.face_scores
    if len(scores) > 1 and not isinstance(verdict, VideoVerdict):  # a video's are in the text
        shown = scores if len(scores) <= FIELDS else scores[:MAX_FACE_FIELDS]
        for face in shown:
            embed.add_field(name=face.label(), value=face.score(), inline=True)
        if len(shown) < len(scores):
            embed.add_field(name="…", value=f"{len(scores) - len(shown)} more faces", inline=True)
    footer = [part for part in (model, _seconds(elapsed_s)) if part]
    if footer:
        embed.set_footer(text=clip(" · ".join(footer), FOOTER))
    if verdict.image is None:
        return Rendered(embed)
    filename = f"{'frames' if isinstance(verdict, VideoVerdict) else 'annotated'}-{number}.jpg"
    embed.set_image(url=f"attachment://{filename}")
    return Rendered(embed, verdict.image, filename)


def _description(verdict: Verdict) -> str:
    if isinstance(verdict, VideoVerdict):  # a line per face track; the sheet's labels match
        return "\n\n".join(["\n".join(verdict.face_lines), f"*{verdict.caveat}*"])
    parts = []
    if verdict.faces > 1:
        parts.append(
            f"{verdict.faces} faces found; the verdict follows the most suspicious one. "
            "Numbers match the labels on the image."
        )
    if verdict.too_small:
        parts.append(too_small_line(verdict.too_small))
    parts.append(f"*{CAVEAT}*")
    return "\n\n".join(parts)


def _seconds(elapsed_s: float | None) -> str | None:
    if elapsed_s is None:
        return None
    return f"checked in {elapsed_s:.1f} s"


def _refusal(refusal: Refusal) -> Rendered:
    title = texts.PROBLEM_TITLES.get(refusal.problem, "No verdict")
    embed = discord.Embed(title=title, colour=NO_VERDICT, description=clip(refusal.message, 4096))
    return Rendered(embed)


def pack(items: Sequence[Rendered], *, max_upload_bytes: int) -> list[list[Rendered]]:
    """Group embeds into messages within Discord's per-message limits, in order. An image
    larger than the upload limit on its own is dropped from its embed."""
    messages: list[list[Rendered]] = []
    current: list[Rendered] = []
    chars = upload = 0
    for item in items:
        if item.image is not None and len(item.image) > max_upload_bytes:
            item.drop_image()
        size = len(item.embed)  # the characters Discord counts against 6000
        image = len(item.image) if item.image is not None else 0
        if current and (
            len(current) >= EMBEDS_PER_MESSAGE
            or chars + size > TOTAL
            or upload + image > max_upload_bytes
        ):
            messages.append(current)
            current, chars, upload = [], 0, 0
        current.append(item)
        chars += size
        upload += image
    if current:
        messages.append(current)
    return messages


def files_of(batch: Sequence[Rendered]) -> list[discord.File]:
    return [f for f in (item.file() for item in batch) if f is not None]
