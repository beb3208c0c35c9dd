"""The platform-neutral core shared by the Telegram and Discord adapters: the detector port,
``CheckService`` (limits, rate limits, admission), the reply model with the one error → text
mapping, per-chat settings and shared wording."""

from bot.core.admission import Admission
from bot.core.chat_settings import ChatSettings
from bot.core.check import CheckLimits, CheckService, ImageRef
from bot.core.detector_port import Detector
from bot.core.errors import (
    BotError,
    DownloadFailed,
    FileTooLarge,
    NotAnImage,
    NotSupportedMedia,
    RateLimited,
    UrlRefused,
)
from bot.core.model_card import ModelCard
from bot.core.ratelimit import SlidingWindowLimiter
from bot.core.replies import (
    FaceScore,
    Hint,
    Problem,
    Refusal,
    Reply,
    Verdict,
    combined_text,
    error_reply,
    verdict_reply,
)

__all__ = [
    "Admission",
    "BotError",
    "ChatSettings",
    "CheckLimits",
    "CheckService",
    "Detector",
    "DownloadFailed",
    "FaceScore",
    "FileTooLarge",
    "Hint",
    "ImageRef",
    "ModelCard",
    "NotAnImage",
    "NotSupportedMedia",
    "Problem",
    "RateLimited",
    "Refusal",
    "Reply",
    "SlidingWindowLimiter",
    "UrlRefused",
    "Verdict",
    "combined_text",
    "error_reply",
    "verdict_reply",
]
