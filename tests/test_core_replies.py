"""The reply model and the one mapping from errors to user text."""

from __future__ import annotations

import logging

import pytest

from bot.core import (
    DownloadFailed,
    FileTooLarge,
    Hint,
    NotAnImage,
    NotSupportedMedia,
    Problem,
    RateLimited,
    Refusal,
    Verdict,
    combined_text,
    error_reply,
    verdict_reply,
)
from bot.core.replies import APOLOGY, CAVEAT, DEFAULT_HINTS, format_percent, headline
from detector.config import Band
from detector.errors import (
    ChecksumMismatch,
    CorruptImage,
    DetectorBusy,
    DetectorClosed,
    DetectorError,
    EmptyImage,
    ImageTooLarge,
    ImageTooSmall,
    NoFaceFound,
    UnsupportedImage,
)

from .standins.fakes import analysis


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0, "<1%"), (0.004, "<1%"), (0.01, "1%"), (0.5349, "53%"), (0.935, "94%"),
     (0.99, "99%"), (0.9951, ">99%"), (1.0, ">99%")],
)  # fmt: skip
def test_percentages_never_claim_certainty(p: float, text: str) -> None:
    assert format_percent(p) == text


def test_headlines_name_the_band() -> None:
    assert headline(Band.FAKE, 0.93) == (
        "🟥 Likely manipulated — 93% probability of a face manipulation"
    )
    assert headline(Band.UNCERTAIN, 0.54).startswith("🟨 Uncertain — 54%")
    assert headline(Band.REAL, 0.08).startswith("🟩 No manipulation detected — 8%")


def test_single_face_verdict_text() -> None:
    reply = verdict_reply(analysis(0.93))
    assert reply.band is Band.FAKE and reply.faces == 1 and reply.face_lines == ()
    assert reply.text().splitlines() == [
        "🟥 Likely manipulated — 93% probability of a face manipulation",
        "",
        CAVEAT,
    ]


def test_verdict_follows_the_most_suspicious_face_and_lists_each() -> None:
    reply = verdict_reply(analysis(0.2, 0.85), hints=frozenset({Hint.COMPRESSED}))
    assert reply.band is Band.FAKE
    assert reply.p_fake == pytest.approx(0.85)
    assert reply.face_lines == (
        "2 faces found; the verdict follows the most suspicious one.",
        "Face 1 (left): 🟩 20%",
        "Face 2 (right): 🟥 85%",
    )
    text = reply.text()
    assert text.endswith(DEFAULT_HINTS[Hint.COMPRESSED])
    custom = reply.text({Hint.COMPRESSED: "send it as a file"})
    assert custom.endswith("send it as a file")


def test_annotated_image_travels_with_the_verdict() -> None:
    from dataclasses import replace

    a = replace(analysis(0.4), annotated_jpeg=b"jpeg-bytes")
    assert verdict_reply(a).image == b"jpeg-bytes"
    assert verdict_reply(analysis(0.4)).image is None


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (RateLimited(10, 12.0), Problem.RATE_LIMITED),
        (FileTooLarge(30 * 2**20, 20 * 2**20, platform_limit="Telegram"), Problem.TOO_LARGE),
        (NotAnImage("pdf"), Problem.NOT_IMAGE),
        (NotSupportedMedia("mp4"), Problem.UNSUPPORTED_MEDIA),
        (DownloadFailed("reset"), Problem.DOWNLOAD_FAILED),
        (NoFaceFound("none"), Problem.NO_FACE),
        (DetectorBusy("full"), Problem.BUSY),
        (DetectorClosed("closing"), Problem.CLOSED),
        (ImageTooLarge("big"), Problem.TOO_LARGE),
        (UnsupportedImage("svg"), Problem.UNREADABLE),
        (CorruptImage("cut"), Problem.UNREADABLE),
        (ImageTooSmall("tiny"), Problem.UNREADABLE),
        (EmptyImage("empty"), Problem.UNREADABLE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_every_known_error_maps_to_its_own_user_text(
    error: DetectorError, problem: Problem, caplog: pytest.LogCaptureFixture
) -> None:
    reply = error_reply(error)
    assert reply == Refusal(problem, error.user_message, reply.short)
    assert reply.text() == error.user_message
    assert "%" not in reply.text()  # a failure is never a score
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("error", [RuntimeError("boom"), ChecksumMismatch("x"), DetectorError()])
def test_unknown_errors_are_logged_with_traceback_and_apologised_for(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise error
    except Exception as exc:
        reply = error_reply(exc)
    assert reply.problem is Problem.INTERNAL
    assert reply.text() == APOLOGY
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert logged[0].exc_info[1] is error


def test_user_texts_are_specific() -> None:
    assert FileTooLarge(31 * 2**20, 20 * 2**20, platform_limit="Telegram").user_message == (
        "This file is 31 MB; Telegram lets bots download files of up to 20 MB. "
        "Please send a smaller version of the picture."
    )
    assert FileTooLarge(int(2.5 * 2**20), 2 * 2**20).user_message == (
        "This file is 2.5 MB; I can check images of up to 2 MB."
    )
    assert FileTooLarge(None, 20 * 2**20, platform_limit="Telegram").user_message.startswith(
        "This file is too large; Telegram lets bots download files of up to 20 MB."
    )


def test_combined_reply_covers_every_image_once() -> None:
    replies = [
        verdict_reply(analysis(0.95, 0.1), hints=frozenset({Hint.COMPRESSED})),
        error_reply(NoFaceFound("none")),
        verdict_reply(analysis(0.05), hints=frozenset({Hint.COMPRESSED})),
        error_reply(NotAnImage("pdf")),
    ]
    lines = combined_text(replies).splitlines()
    assert lines == [
        "Checked 4 images:",
        "Image 1: 🟥 Likely manipulated — 95% (2 faces)",
        "Image 2: No face found (the detector only judges faces).",
        "Image 3: 🟩 No manipulation detected — 5%",
        "Image 4: Not an image.",
        "",
        CAVEAT,
        DEFAULT_HINTS[Hint.COMPRESSED],
    ]


def test_combined_reply_without_verdicts_has_no_caveat() -> None:
    replies = [error_reply(NoFaceFound("a")), error_reply(CorruptImage("b"))]
    text = combined_text(replies)
    assert CAVEAT not in text and "%" not in text


def test_one_refusal_for_a_whole_album_is_said_once() -> None:
    limited = error_reply(RateLimited(10, 30))
    assert combined_text([limited, limited, limited]) == limited.message


def test_identical_verdicts_are_still_listed_per_image() -> None:
    same = verdict_reply(analysis(0.1))
    assert combined_text([same, same]).splitlines()[:3] == [
        "Checked 2 images:",
        "Image 1: 🟩 No manipulation detected — 10%",
        "Image 2: 🟩 No manipulation detected — 10%",
    ]


def test_single_reply_combined_is_its_own_text() -> None:
    verdict = verdict_reply(analysis(0.6))
    assert isinstance(verdict, Verdict)
    assert combined_text([verdict]) == verdict.text()
    with pytest.raises(ValueError, match="no replies"):
        combined_text([])
