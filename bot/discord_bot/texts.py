"""What the Discord bot says outside the verdicts themselves: command descriptions, usage and
admin answers, titles for refusals, and the Message Content intent warnings."""

from __future__ import annotations

from collections.abc import Mapping

from bot.core import CheckLimits, ModelCard, Problem
from bot.core.texts import HONESTY, PRIVACY, WHAT_IT_DOES, limits_text

MENU_NAME = "Check for deepfake"

CHECK_DESCRIPTION = "Check an image for signs of face manipulation (deepfakes)"
IMAGE_OPTION = "The image to check"
URL_OPTION = "Or a direct link to an image (http/https)"
ABOUT_DESCRIPTION = "How the deepfake check works: the model, its limits and privacy"

CHECK_NOTHING = "Attach an image with `image:`, or give a direct link with `url:`."
URL_DISABLED = "Checking links is switched off on this bot. Attach the image instead."
MENU_NOTHING = "That message has no image attachments or image previews to check."
SHUTTING_DOWN = "I am restarting right now. Please try again in a minute."
APOLOGY = "Sorry, something went wrong on my side. Please try again later."
DM_HELP = (
    "Send me an image (or several) and I will check the faces in it for signs of manipulation. "
    "In a server, use `/check` or right-click a message → Apps → **Check for deepfake**."
)
AUTOSCAN_INTRO = "Auto-scan flagged {what} in this message:"

PROBLEM_TITLES: Mapping[Problem, str] = {
    Problem.NO_FACE: "No face found",
    Problem.FACES_TOO_SMALL: "Faces too small to judge",
    Problem.BUSY: "Busy right now",
    Problem.CLOSED: "Restarting",
    Problem.UNAVAILABLE: "Detector unavailable",
    Problem.RATE_LIMITED: "Slow down",
    Problem.TOO_LARGE: "File too large",
    Problem.NOT_IMAGE: "Not an image",
    Problem.UNSUPPORTED_MEDIA: "Not a still image",
    Problem.UNREADABLE: "Unreadable image",
    Problem.DOWNLOAD_FAILED: "Download failed",
    Problem.URL_REFUSED: "Link refused",
    Problem.INTERNAL: "Something went wrong",
}

# --- /deepfake (server admins) ---------------------------------------------------------------

ADMIN_DESCRIPTION = "Deepfake check settings for this server (needs Manage Server)"
AUTOSCAN_DESCRIPTION = "Check every image posted in this channel and flag likely deepfakes"
THRESHOLD_DESCRIPTION = "The score at which auto-scan flags an image (default: the model's)"
REPLIES_DESCRIPTION = "Whether /check answers are visible to everyone or only to the asker"
STATUS_DESCRIPTION = "Show this server's deepfake check settings"

AUTOSCAN_ON = (
    "Auto-scan is **on** in {channel}: I check every image posted here (and in its threads) "
    "and {action} when a face scores **{threshold}** or more. Images below that get no "
    "answer, so the channel is not spammed."
)
AUTOSCAN_OFF = "Auto-scan is **off** in {channel}. `/check` and the message menu still work."
ACTION_WORDS = {"reply": "reply with the verdict", "react": "react with 🟥 or 🟨"}
INTENT_MISSING = (
    "⚠️ **I cannot see images posted in server channels right now**: this bot runs without "
    "the *Message Content* intent, so Discord hides attachments and links from it. The bot's "
    "owner must switch on *Message Content Intent* in the Discord Developer Portal (Bot → "
    "Privileged Gateway Intents) and restart the bot. Until then auto-scan cannot work; "
    "`/check` and the **Check for deepfake** message menu are not affected."
)
MISSING_PERMISSIONS = "⚠️ In this channel I am missing: {names}. Auto-scan needs them to {why}."
THRESHOLD_SET = (
    "Auto-scan now flags images whose most suspicious face scores **{threshold}** or more "
    "(model default: {default})."
)
THRESHOLD_RESET = "Auto-scan uses the model's threshold again: **{default}**."
REPLIES_SET = "`/check` and message-menu answers are now **{mode}** in this server."
REPLIES_WORDS = {True: "public (everyone in the channel sees them)", False: "private (only the "
                 "person who asked sees them)"}  # fmt: skip

INTENT_LOG = (
    "Discord refused the Message Content intent (not enabled for this application in the "
    "Developer Portal → Bot → Privileged Gateway Intents): running without it. /check and the "
    "message menu work; auto-scan cannot see images in server channels until it is enabled."
)
INTENT_OFF_LOG = (
    "DISCORD_MESSAGE_CONTENT=false: running without the Message Content intent; auto-scan "
    "cannot see images in server channels."
)


def percent(value: float) -> str:
    return f"{round(value * 100):d}%"


def about_text(card: ModelCard, limits: CheckLimits, rate_limit_per_minute: int) -> str:
    return "\n".join(
        [
            WHAT_IT_DOES,
            "",
            "**How to use it:** `/check` with an image (or a link), or right-click a message → "
            f"Apps → **{MENU_NAME}**. Server admins can switch on auto-scan per channel with "
            "`/deepfake autoscan`.",
            "",
            *card.lines(),
            "",
            limits_text(limits, rate_limit_per_minute),
            "",
            HONESTY,
            "",
            PRIVACY,
        ]
    )
