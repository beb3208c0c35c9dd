"""The platform-neutral reply model and the one place that turns outcomes into words.

A check ends in a :class:`Verdict` (band, percentage, per-face lines, caveat, the annotated
image; for a video a :class:`VideoVerdict`: per-track lines and the contact sheet) or a
:class:`Refusal` (why there is no verdict). :func:`error_reply` is the only mapping
from exceptions to user text: every ``UserFacingError`` (the detector's and the bot's own)
carries a ``user_message``; anything else is logged with its traceback and answered with a
short apology.
A failure is never turned into a score.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.core.errors import (
    DownloadFailed,
    FileTooLarge,
    NotAnImage,
    NotSupportedMedia,
    RateLimited,
    UrlRefused,
)
from detector.config import Band
from detector.errors import (
    DetectorBusy,
    DetectorClosed,
    DetectorUnavailable,
    FacesTooSmall,
    ImageError,
    ImageTooLarge,
    NoFaceFound,
    UserFacingError,
    VideoError,
    VideoTooLarge,
    VideoTooLong,
)
from detector.results import Analysis, FaceResult
from detector.video_results import TrackResult, VideoAnalysis

_log = logging.getLogger(__name__)

BAND_EMOJI: dict[Band, str] = {Band.FAKE: "🟥", Band.UNCERTAIN: "🟨", Band.REAL: "🟩"}

CAVEAT = (
    "The model judges faces only (face swaps, AI-generated faces); it can be wrong, "
    "and a score is not proof either way."
)
VIDEO_CAVEAT = (
    "A video is judged face by face over the sampled frames (the mean P(fake) of each face's "
    "frames); the thresholds are the image model's and have not been calibrated on real "
    "deepfake videos."
)
APOLOGY = (
    "Sorry, something went wrong on my side while checking this image. Please try again later."
)


class Hint(StrEnum):
    """Advice attached to a verdict; adapters may word it for their platform."""

    COMPRESSED = "compressed"


DEFAULT_HINTS: Mapping[Hint, str] = {
    Hint.COMPRESSED: (
        "Tip: this picture was compressed by the chat app. Sending it as a file (uncompressed) "
        "gives a more reliable answer."
    ),
}


class Problem(StrEnum):
    """Why a check has no verdict. Stable names for logs, metrics and adapters."""

    NO_FACE = "no_face"
    FACES_TOO_SMALL = "faces_too_small"
    BUSY = "busy"
    CLOSED = "closed"
    UNAVAILABLE = "detector_unavailable"  # the remote detector server unreachable or failing
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    NOT_IMAGE = "not_image"
    UNSUPPORTED_MEDIA = "unsupported_media"
    UNREADABLE = "unreadable"
    DOWNLOAD_FAILED = "download_failed"
    URL_REFUSED = "url_refused"
    INTERNAL = "internal"


def format_percent(p: float) -> str:
    """A probability as a whole percentage that never claims certainty it does not have."""
    pct = p * 100.0
    if pct < 1.0:
        return "<1%"
    if pct > 99.0:
        return ">99%"
    return f"{round(pct):d}%"


def headline(band: Band, p_fake: float) -> str:
    return (
        f"{BAND_EMOJI[band]} {band.label} — {format_percent(p_fake)} "
        "probability of a face manipulation"
    )


def _position(face: FaceResult, width: int) -> str:
    centre = (face.box.x1 + face.box.x2) / 2
    if centre < width / 3:
        return "left"
    if centre > 2 * width / 3:
        return "right"
    return "centre"


@dataclass(frozen=True)
class FaceScore:
    """One face of a verdict, numbered like the labels on the annotated image (#1, #2, …),
    for adapters that lay faces out themselves (Discord embed fields)."""

    number: int
    position: str  # "left", "centre" or "right" third of the picture
    band: Band
    p_fake: float

    def label(self) -> str:
        return f"Face {self.number} ({self.position})"

    def score(self) -> str:
        return f"{BAND_EMOJI[self.band]} {format_percent(self.p_fake)}"


def face_scores(analysis: Analysis) -> tuple[FaceScore, ...]:
    return tuple(
        FaceScore(number, _position(face, analysis.width), face.band, face.p_fake)
        for number, face in enumerate(analysis.faces, start=1)
    )


def face_lines(analysis: Analysis) -> tuple[str, ...]:
    """One line per face, numbered like the labels on the annotated image (#1, #2, …)."""
    if len(analysis.faces) < 2:
        return ()
    lines = [f"{len(analysis.faces)} faces found; the verdict follows the most suspicious one."]
    for number, face in enumerate(analysis.faces, start=1):
        lines.append(
            f"Face {number} ({_position(face, analysis.width)}): "
            f"{BAND_EMOJI[face.band]} {format_percent(face.p_fake)}"
        )
    return tuple(lines)


def too_small_line(count: int) -> str:
    """Said with a verdict when some faces were found but not judged."""
    if count == 1:
        return "1 more face was found but is too small to judge."
    return f"{count} more faces were found but are too small to judge."


@dataclass(frozen=True)
class Verdict:
    """A verdict on one image: what to say and the annotated picture to show with it."""

    band: Band
    p_fake: float
    faces: int
    headline: str
    face_lines: tuple[str, ...] = ()
    caveat: str = CAVEAT
    image: bytes | None = field(default=None, repr=False)
    hints: frozenset[Hint] = frozenset()
    face_scores: tuple[FaceScore, ...] = ()
    too_small: int = 0  # faces found but too small to judge (not scored)
    # The detector's full result, for adapters that report boxes and timings (the HTTP API).
    analysis: Analysis | None = field(default=None, repr=False, compare=False)

    def text(self, hint_texts: Mapping[Hint, str] = DEFAULT_HINTS) -> str:
        small = [too_small_line(self.too_small)] if self.too_small else []
        parts = [self.headline, *self.face_lines, *small, "", self.caveat]
        parts += [hint_texts[h] for h in sorted(self.hints)]
        return "\n".join(parts)

    def summary(self) -> str:
        """One line for a combined (album) reply."""
        faces = f" ({self.faces} faces)" if self.faces > 1 else ""
        if self.too_small:
            faces += f" (+{self.too_small} too small to judge)"
        return f"{BAND_EMOJI[self.band]} {self.band.label} — {format_percent(self.p_fake)}{faces}"


@dataclass(frozen=True)
class Refusal:
    """No verdict, and why, in words for the sender."""

    problem: Problem
    message: str
    short: str = ""  # for combined replies; the message when empty
    # Rate limits: when the next check fits (for the API's Retry-After; not part of equality).
    retry_after_s: float | None = field(default=None, compare=False)

    def text(self, hint_texts: Mapping[Hint, str] = DEFAULT_HINTS) -> str:
        return self.message

    def summary(self) -> str:
        return self.short or self.message


Reply = Verdict | Refusal


def verdict_reply(analysis: Analysis, *, hints: frozenset[Hint] = frozenset()) -> Verdict:
    return Verdict(
        band=analysis.verdict,
        p_fake=analysis.p_fake,
        faces=len(analysis.faces),
        headline=headline(analysis.verdict, analysis.p_fake),
        face_lines=face_lines(analysis),
        image=analysis.annotated_jpeg,
        hints=hints,
        face_scores=face_scores(analysis),
        too_small=len(analysis.too_small),
        analysis=analysis,
    )


def _span(track: TrackResult) -> str:
    if track.frames == 1:
        return f"at {track.first_s:.1f} s"
    return f"{track.first_s:.1f}-{track.last_s:.1f} s"


def track_line(track: TrackResult) -> str:
    """One face track in words: when, how many frames, mean (the verdict's), peak, median, and
    the share of frames judged manipulated on their own."""
    frames = "1 frame" if track.frames == 1 else f"{track.frames} frames"
    return (
        f"Face {track.number} ({_span(track)}, {frames}): {BAND_EMOJI[track.band]} "
        f"{format_percent(track.p_fake)} on average, peak {format_percent(track.p_max)}, "
        f"median {format_percent(track.p_median)}; "
        f"{format_percent(track.share_fake)} of frames judged manipulated"
    )


@dataclass(frozen=True)
class VideoVerdict(Verdict):
    """A verdict on a video or animation: one line per face track, the contact sheet of its
    most suspicious frames as the picture. A ``Verdict``, so every adapter that shows a
    verdict's text and picture shows this one too; ``video`` has the full result."""

    video: VideoAnalysis | None = field(default=None, repr=False, compare=False)

    def summary(self) -> str:
        tracks = f" ({self.faces} faces)" if self.faces > 1 else ""
        return (
            f"{BAND_EMOJI[self.band]} {self.band.label} — {format_percent(self.p_fake)}"
            f"{tracks}, video"
        )


def video_reply(video: VideoAnalysis, *, hints: frozenset[Hint] = frozenset()) -> VideoVerdict:
    what = "animation" if video.container in {"gif", "webp"} else "video"
    n = len(video.tracks)
    followed = (
        "1 face followed"
        if n == 1
        else f"{n} faces followed; the verdict follows the most suspicious one"
    )
    frames = "1 frame" if video.frames_sampled == 1 else f"{video.frames_sampled} frames"
    lines = (
        f"Checked {frames} of a {video.duration_s:.1f} s {what}; {followed}.",
        *(track_line(t) for t in video.tracks),
    )
    return VideoVerdict(
        band=video.verdict,
        p_fake=video.p_fake,
        faces=n,
        headline=headline(video.verdict, video.p_fake),
        face_lines=lines,
        caveat=f"{CAVEAT} {VIDEO_CAVEAT}",
        image=video.contact_sheet_jpeg,
        hints=hints,
        face_scores=tuple(
            FaceScore(t.number, _span(t), t.band, t.p_fake) for t in video.tracks
        ),
        video=video,
    )


def video_progress(done: int, total: int) -> str:
    """The progress message a chat shows while a video's frames are checked."""
    if done >= total:
        return f"Checked all {total} frames; writing the answer…"
    return f"Checking the video… checked {done} of {total} frames"


_PROBLEMS: tuple[tuple[type[UserFacingError], Problem], ...] = (
    # Most specific first: ImageTooLarge is an ImageError too.
    (RateLimited, Problem.RATE_LIMITED),
    (FileTooLarge, Problem.TOO_LARGE),
    (NotAnImage, Problem.NOT_IMAGE),
    (NotSupportedMedia, Problem.UNSUPPORTED_MEDIA),
    (DownloadFailed, Problem.DOWNLOAD_FAILED),
    (UrlRefused, Problem.URL_REFUSED),
    (FacesTooSmall, Problem.FACES_TOO_SMALL),
    (NoFaceFound, Problem.NO_FACE),
    (DetectorBusy, Problem.BUSY),
    (DetectorClosed, Problem.CLOSED),
    (DetectorUnavailable, Problem.UNAVAILABLE),
    (ImageTooLarge, Problem.TOO_LARGE),
    (ImageError, Problem.UNREADABLE),
    (VideoTooLong, Problem.TOO_LARGE),
    (VideoTooLarge, Problem.TOO_LARGE),
    (VideoError, Problem.UNREADABLE),
)

_SHORT: dict[Problem, str] = {
    Problem.NO_FACE: "No face found (the detector only judges faces).",
    Problem.FACES_TOO_SMALL: "Faces found, but too small to judge.",
    Problem.BUSY: "The detector was busy; please send this one again in a moment.",
    Problem.UNAVAILABLE: "The detector was unavailable; please send this one again later.",
    Problem.NOT_IMAGE: "Not an image.",
    Problem.DOWNLOAD_FAILED: "Could not be downloaded; please send it again.",
}


def error_reply(exc: BaseException) -> Refusal:
    """The user-facing answer for a failed check. Unknown errors are logged with traceback."""
    if isinstance(exc, UserFacingError):
        for kind, problem in _PROBLEMS:
            if isinstance(exc, kind):
                _log.debug("check refused (%s): %s", problem, exc)
                retry = exc.retry_after_s if isinstance(exc, RateLimited) else None
                return Refusal(problem, exc.user_message, _SHORT.get(problem, ""), retry)
    _log.error("unexpected error while checking an image", exc_info=exc)
    return Refusal(Problem.INTERNAL, APOLOGY, "Something went wrong on my side.")


def combined_text(replies: Sequence[Reply], hint_texts: Mapping[Hint, str] = DEFAULT_HINTS) -> str:
    """One message covering several images (an album), in the order they were sent."""
    if not replies:
        raise ValueError("no replies to combine")
    first = replies[0]
    if len(replies) == 1 or (isinstance(first, Refusal) and all(r == first for r in replies)):
        return first.text(hint_texts)  # one image, or one refusal for all (a rate limit)
    lines = [f"Checked {len(replies)} images:"]
    lines += [f"Image {i}: {reply.summary()}" for i, reply in enumerate(replies, start=1)]
    verdicts = [r for r in replies if isinstance(r, Verdict)]
    if verdicts:
        lines += ["", CAVEAT]
        hints = frozenset().union(*(v.hints for v in verdicts))
        lines += [hint_texts[h] for h in sorted(hints)]
    return "\n".join(lines)
