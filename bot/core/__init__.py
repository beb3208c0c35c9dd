"""The platform-neutral core shared by the Telegram and Discord adapters: the detector port,
``CheckService`` (limits, rate limits, admission), the reply model with the one error → text
mapping, per-chat settings and shared wording. Adapters take the detector's vocabulary
(``Band``, ``Analysis``, ``FaceResult``, the in-flight tracker, the error root) from here, never
from ``detector`` directly."""

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
from detector.config import Band
from detector.errors import DetectorBusy, DetectorClosed, UserFacingError
from detector.idle import IdleTracker
from detector.results import Analysis, FaceResult

__all__ = [
    "Admission",
    "Analysis",
    "Band",
    "BotError",
    "ChatSettings",
    "CheckLimits",
    "CheckService",
    "Detector",
    "DetectorBusy",
    "DetectorClosed",
    "DownloadFailed",
    "FaceResult",
    "FaceScore",
    "FileTooLarge",
    "Hint",
    "IdleTracker",
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
    "UserFacingError",
    "Verdict",
    "combined_text",
    "error_reply",
    "verdict_reply",
]
