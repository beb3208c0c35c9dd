"""What the Telegram bot says outside verdicts: /start, /help, usage and auto-scan answers,
the command menu, and the Telegram wording of hints."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import BotCommand

from bot.core import CheckLimits, Hint, ModelCard
from bot.core.texts import HONESTY, PRIVACY, WHAT_IT_DOES, limits_text

HINTS: Mapping[Hint, str] = {
    Hint.COMPRESSED: (
        "Tip: Telegram compressed this photo. For a more reliable answer, send the picture as "
        "a file (📎 → File)."
    ),
}

PRIVATE_COMMANDS = (
    BotCommand("check", "Check the picture you reply to"),
    BotCommand("help", "How it works, limits and privacy"),
    BotCommand("about", "The model and its measured figures"),
    BotCommand("start", "Introduction"),
)
# Group admins also get the auto-scan switch in their menu.
ADMIN_COMMANDS = (
    *PRIVATE_COMMANDS[:3],
    BotCommand("autoscan", "on | off: check every picture posted here"),
)

START = (
    "Hi! Send me a photo or an image file and I will check the faces in it for signs of "
    "manipulation (deepfakes).\n\n"
    "For the most reliable answer, send the picture as a file (📎 → File): Telegram "
    "compresses photos.\n"
    "In groups, reply to a picture with /check.\n\n"
    "/help: how it works, limits and privacy\n"
    "/about: the model"
)

CHECK_USAGE = (
    "Reply to a photo or an image file with /check and I will check it. "
    "In a private chat with me you can also simply send the picture."
)
CHECK_NOTHING = (
    "The message you replied to has no picture. Reply to a photo or an image file with /check."
)
PRIVATE_FALLBACK = "Send me a photo or an image file to check it. /help explains how I work."

AUTOSCAN_PRIVATE = "Auto-scan is for groups: in a private chat I check every picture anyway."
AUTOSCAN_USAGE = "Use /autoscan on or /autoscan off. Auto-scan is currently {state} in this chat."
AUTOSCAN_ADMINS_ONLY = "Only the group's admins can switch auto-scan on or off."
AUTOSCAN_NEEDS_ADMIN = (
    "I can only see every picture posted here if I am an admin of this group (with privacy "
    "mode on, bots see only commands and replies). Make me an admin, then try again."
)
AUTOSCAN_ON = (
    "Auto-scan is on: I will check every picture posted here and reply when a face looks "
    "manipulated or uncertain. /autoscan off switches it off."
)
AUTOSCAN_OFF = "Auto-scan is off. Anyone can still reply to a picture with /check."


def help_text(limits: CheckLimits, rate_limit_per_minute: int) -> str:
    return "\n\n".join(
        [
            WHAT_IT_DOES,
            "How to use me:\n"
            "• Private chat: send a photo, an image file, or an album.\n"
            "• Groups: reply to a picture with /check. Group admins can turn on /autoscan so "
            "that I check every picture posted (I need to be an admin for that).\n"
            "• Photos are compressed by Telegram: sending the picture as a file (📎 → File) "
            "gives a more reliable answer.",
            limits_text(limits, rate_limit_per_minute),
            HONESTY,
            PRIVACY,
        ]
    )


def about_text(card: ModelCard) -> str:
    return "\n".join([*card.lines(), "", HONESTY])
