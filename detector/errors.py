"""Typed domain errors of the detector.

Every error carries ``user_message``: text that is safe to show to the person who sent the
image (no paths, no stack traces, no internals). Adapters map these to replies in one place.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """Root of every error raised on purpose, in the engine (``DetectorError``) or around it
    (the bots' ``BotError``): one mapping to replies covers both, and neither is the other."""

    user_message = "Something went wrong while checking this image."

    def __init__(self, detail: str | None = None, *, user_message: str | None = None) -> None:
        if user_message is not None:
            self.user_message = user_message
        super().__init__(detail or self.user_message)


class DetectorError(UserFacingError):
    """Base of every error the detector raises on purpose."""


# --- input images -----------------------------------------------------------------------------


class ImageError(DetectorError):
    """The bytes given are not an image we can analyse."""


class UnsupportedImage(ImageError):
    user_message = (
        "This file is not an image I can read. Supported formats: JPEG, PNG, WebP, GIF, BMP, "
        "TIFF and HEIC."
    )


class CorruptImage(ImageError):
    user_message = "This image is damaged or incomplete, so I could not read it."


class ImageTooLarge(ImageError):
    user_message = "This image is too large to analyse."


class ImageTooSmall(ImageError):
    user_message = "This image is too small to analyse. Please send a larger picture."


class EmptyImage(ImageError):
    user_message = "The file is empty."


# --- input videos and animations ------------------------------------------------------------


class VideoError(DetectorError):
    """The bytes given are not a video or animation we can analyse."""


class CorruptVideo(VideoError):
    user_message = "This video is damaged or incomplete, so I could not read it."


class UnsupportedVideo(VideoError):
    user_message = (
        "This file is not a video I can read. Supported: MP4, MOV, WebM, MKV, AVI, GIF and "
        "animated WebP."
    )


class VideoTooLong(VideoError):
    def __init__(self, duration_s: float, limit_s: float) -> None:
        self.duration_s = duration_s
        self.limit_s = limit_s
        super().__init__(
            f"{duration_s:.1f} s > {limit_s:.0f} s",
            user_message=(
                f"This video is too long to check ({duration_s:.0f} s; the limit is "
                f"{limit_s:.0f} s). Please send a shorter clip of the part with the face."
            ),
        )


class VideoTooLarge(VideoError):
    """Over the byte or resolution limit (the message says which)."""

    user_message = "This video is too large to analyse."


class VideoTimeout(VideoError):
    user_message = (
        "This video took too long to decode, so I stopped. Please send a shorter or smaller clip."
    )


# --- analysis ---------------------------------------------------------------------------------


class NoFaceFound(DetectorError):
    user_message = (
        "I could not find a face in this image. The detector only judges faces: "
        "try a picture where a face is clearly visible and at least about 40 pixels wide."
    )


class FacesTooSmall(NoFaceFound):
    """Faces were found, but every one is narrower than the classifier can judge. A
    ``NoFaceFound`` so callers that only know "no verdict for lack of a face" still work."""

    def __init__(self, count: int, min_px: int) -> None:
        self.count = count
        self.min_px = min_px
        what = "a face" if count == 1 else f"{count} faces"
        them = "it is" if count == 1 else "they are"
        super().__init__(
            f"{count} face(s), all under {min_px} px",
            user_message=(
                f"I found {what}, but {them} too small to judge (under {min_px} pixels wide). "
                "Please send a larger or closer picture of the face."
            ),
        )


class NoFaceInVideo(NoFaceFound):
    """No face in any sampled frame of a video (a ``NoFaceFound``: no verdict for lack of a
    face, whatever the medium)."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        super().__init__(
            f"no face in {frames} sampled frame(s)",
            user_message=(
                f"I could not find a face in any of the {frames} frames I looked at. The detector "
                "only judges faces: try a clip where a face is clearly visible and at least about "
                "40 pixels wide."
            ),
        )


class DetectorBusy(DetectorError):
    user_message = "The detector is busy right now. Please try again in a moment."


class DetectorClosed(DetectorError):
    user_message = "The detector is shutting down. Please try again in a minute."


class DetectorUnavailable(DetectorError):
    """The remote detector server cannot be reached, keeps failing, or is too slow. The detail
    (for the log) names the server; the user text never does."""

    user_message = (
        "The detector is unavailable right now, so I could not check this. Please try again in "
        "a few minutes."
    )


# --- weights ----------------------------------------------------------------------------------


class CheckpointError(DetectorError):
    """A weights file could not be used. The message names the reason for the operator."""

    user_message = "The detector's model could not be loaded."


class UnsupportedCheckpoint(CheckpointError):
    pass


class UnsafeCheckpoint(CheckpointError):
    pass


class NotADetector(CheckpointError):
    pass


class ChecksumMismatch(CheckpointError):
    pass


class WeightsNotInstalled(CheckpointError):
    pass


class RemoteModelRefused(CheckpointError):
    """The remote detector server does not serve a model this client can use (unknown name,
    metadata without the served weights' config, an input that does not match it)."""


# --- face finders -----------------------------------------------------------------------------


class FinderUnavailable(DetectorError):
    """A face finder whose package or packaged weights are not installed (operator error)."""

    user_message = "The detector's face finder could not be loaded."
