"""The platform-neutral core shared by the Telegram and Discord adapters: the detector port,
``CheckService`` (limits, rate limits, admission), the reply model with the one error → text
mapping, per-chat settings and shared wording. Adapters take the detector's vocabulary
(``Band``, ``Analysis``, ``FaceResult``, ``VideoAnalysis``, the in-flight tracker, the error
root) from here, never from ``detector`` directly."""

from bot.core.admission import Admission
from bot.core.chat_settings import ChatSettings
from bot.core.check import CheckLimits, CheckService, ImageRef, Progress, is_video
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
from bot.core.ratelimit import RateLimiter, SlidingWindowLimiter
from bot.core.replies import (
    FaceScore,
    Hint,
    Problem,
    Refusal,
    Reply,
    Verdict,
    VideoVerdict,
    combined_text,
    error_reply,
    verdict_reply,
    video_progress,
    video_reply,
)
from detector.config import Band
from detector.errors import DetectorBusy, DetectorClosed, DetectorUnavailable, UserFacingError
from detector.idle import IdleTracker
from detector.results import Analysis, FaceResult
from detector.video_results import TrackResult, VideoAnalysis

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
    "DetectorUnavailable",
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
    "Progress",
    "RateLimited",
    "RateLimiter",
    "Refusal",
    "Reply",
    "SlidingWindowLimiter",
    "TrackResult",
    "UrlRefused",
    "UserFacingError",
    "Verdict",
    "VideoAnalysis",
    "VideoVerdict",
    "combined_text",
    "error_reply",
    "is_video",
    "verdict_reply",
    "video_progress",
    "video_reply",
]
