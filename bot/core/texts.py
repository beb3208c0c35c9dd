"""Wording shared by every platform's ``help``/``about`` answers: what the bot detects, its
limits and its privacy promise. Platform adapters add how to use them on their platform."""

from __future__ import annotations

from bot.core.check import CheckLimits
from detector.results import MIN_JUDGE_PX

WHAT_IT_DOES = (
    "I look for faces in a picture and score each one for signs of face manipulation: "
    "face swaps and AI-generated faces (deepfakes). You get a verdict, a percentage and, when "
    "faces were found, the picture with each face marked."
)

PRIVACY = (
    "Privacy: images are analysed in memory and never stored. Nothing about the picture is "
    "kept after the reply."
)

HONESTY = (
    "A score is an estimate, not proof: the model can be wrong, especially on small, blurry "
    "or heavily compressed faces, and it does not judge edits elsewhere in the picture."
)


def limits_text(limits: CheckLimits, rate_limit_per_minute: int) -> str:
    mb = limits.max_image_bytes / (1024 * 1024)
    if limits.videos:
        what = (
            f"images (JPEG, PNG, WebP, HEIC, GIF, BMP, TIFF) up to {mb:.0f} MB, and videos and "
            f"animations (MP4, WebM, MOV, GIF, video notes) up to "
            f"{limits.max_video_bytes / (1024 * 1024):.0f} MB, judged face by face over "
            "sampled frames"
        )
    else:
        what = (
            "still images only (JPEG, PNG, WebP, HEIC, GIF, BMP, TIFF; the first frame of "
            f"an animation), up to {mb:.0f} MB"
        )
    parts = [
        f"Limits: {what}; up to {limits.max_faces} faces per picture. "
        f"Faces narrower than {MIN_JUDGE_PX} pixels are counted but too small to judge; "
        "faces in profile or largely hidden are often not found."
    ]
    if rate_limit_per_minute > 0:
        parts.append(f"Up to {rate_limit_per_minute} checks per person per minute.")
    return " ".join(parts)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut (platform caps)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
