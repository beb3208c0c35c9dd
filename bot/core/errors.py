"""Bot-side errors: what can go wrong around the detector (limits, downloads, rate limits).

Like the detector's errors, each carries ``user_message``, text safe to show to the sender.
"""

from __future__ import annotations

import math

from detector.errors import UserFacingError


class BotError(UserFacingError):
    """Base of the bot's own refusals (not engine errors): limits, downloads, rate limits."""


def _size(n: int) -> str:
    """Bytes as people read file sizes: "31 MB", "2.5 MB", "800 KB"."""
    mb = n / (1024 * 1024)
    if mb >= 10 or (mb >= 1 and mb == int(mb)):
        return f"{mb:.0f} MB"
    if mb >= 1:
        return f"{mb:.1f} MB"
    return f"{max(1, round(n / 1024))} KB"


class FileTooLarge(BotError):
    """Refused before (or instead of) downloading: the file is over a size limit."""

    def __init__(self, size: int | None, limit: int, *, platform_limit: str | None = None) -> None:
        self.size = size
        self.limit = limit
        what = f"This file is {_size(size)}" if size is not None else "This file is too large"
        if platform_limit is not None:
            text = (
                f"{what}; {platform_limit} lets bots download files of up to {_size(limit)}. "
                "Please send a smaller version of the picture."
            )
        else:
            text = f"{what}; I can check images of up to {_size(limit)}."
        super().__init__(f"file of {size} bytes over the {limit}-byte limit", user_message=text)


class NotAnImage(BotError):
    """The platform says the file is not an image (e.g. a PDF sent as a document)."""

    user_message = (
        "This file is not an image. Send a photo or an image file (JPEG, PNG, WebP, HEIC, …)."
    )


class NotSupportedMedia(BotError):
    """Media the detector cannot judge, such as videos and animations."""

    user_message = (
        "I can only check still images. For a video, send a screenshot of the frame where the "
        "face is clearly visible."
    )


class DownloadFailed(BotError):
    user_message = "I could not download this image. Please send it again."


class UrlRefused(BotError):
    """An image link the bot will not fetch: not http(s), or pointing at a private, loopback or
    otherwise non-public address (which would let anyone probe the bot's own network)."""

    user_message = (
        "I can only fetch images from public http(s) links. Attach the image instead, or use a "
        "direct link to the picture."
    )


class RateLimited(BotError):
    """The sender used up their checks for now; ``retry_after_s`` says when the next one fits."""

    def __init__(self, limit_per_minute: int, retry_after_s: float) -> None:
        self.limit_per_minute = limit_per_minute
        self.retry_after_s = retry_after_s
        wait = max(1, math.ceil(retry_after_s))
        unit = "second" if wait == 1 else "seconds"
        super().__init__(
            f"rate limited for {retry_after_s:.1f}s",
            user_message=(
                f"You have reached the limit of {limit_per_minute} checks per minute. "
                f"Please try again in {wait} {unit}."
            ),
        )
