"""``CheckService`` and bounded admission, with a fake detector and in-memory fetchers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bot.core import (
    Admission,
    CheckLimits,
    CheckService,
    DownloadFailed,
    Hint,
    ImageRef,
    Problem,
    Refusal,
    SlidingWindowLimiter,
    Verdict,
)
from detector.errors import DetectorBusy, DetectorClosed, NoFaceFound

from .standins.fakes import FakeDetector, always, analysis

KB = 1024


def fetch_of(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        fetch.calls += 1  # type: ignore[attr-defined]
        return data

    fetch.calls = 0  # type: ignore[attr-defined]
    return fetch


def service(
    detector: FakeDetector,
    *,
    rate: int = 100,
    limit: int = 4,
    backlog: int = 8,
    max_bytes: int = 100 * KB,
    timeout_s: float = 5.0,
) -> CheckService:
    return CheckService(
        detector,
        limits=CheckLimits(max_image_bytes=max_bytes, download_timeout_s=timeout_s),
        admission=Admission(limit, backlog),
        rate_limiter=SlidingWindowLimiter(rate),
    )


async def test_verdict_with_hint_for_compressed_pictures() -> None:
    detector = FakeDetector(always(analysis(0.8)))
    checks = service(detector)
    plain = await checks.check("u", ImageRef(fetch_of(b"img"), mime_type="image/png"))
    squashed = await checks.check("u", ImageRef(fetch_of(b"img"), compressed=True))
    assert isinstance(plain, Verdict) and plain.hints == frozenset()
    assert isinstance(squashed, Verdict) and squashed.hints == {Hint.COMPRESSED}
    assert plain.image is not None  # annotation was asked for
    assert detector.seen == [b"img", b"img"]


@pytest.mark.parametrize(
    ("mime", "name", "problem"),
    [
        ("application/pdf", "report.pdf", Problem.NOT_IMAGE),
        ("text/plain", None, Problem.NOT_IMAGE),
        ("application/octet-stream", "notes.txt", Problem.NOT_IMAGE),
        ("video/mp4", "clip.mp4", Problem.UNSUPPORTED_MEDIA),
    ],
)
async def test_non_images_are_refused_without_download(
    mime: str, name: str | None, problem: Problem
) -> None:
    detector = FakeDetector(always(analysis(0.8)))
    fetch = fetch_of(b"data")
    reply = await service(detector).check("u", ImageRef(fetch, mime_type=mime, file_name=name))
    assert isinstance(reply, Refusal) and reply.problem is problem
    assert fetch.calls == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mime", "name"),
    [("image/heic", "IMG_1.HEIC"), (None, None), ("application/octet-stream", "photo.JPG"),
     ("image/svg+xml", "x.svg")],
)  # fmt: skip
async def test_possible_images_are_left_to_the_detector(mime: str | None, name: str | None) -> None:
    detector = FakeDetector(always(analysis(0.8)))
    reply = await service(detector).check(
        "u", ImageRef(fetch_of(b"d"), mime_type=mime, file_name=name)
    )
    assert isinstance(reply, Verdict)


async def test_declared_size_over_the_smaller_limit_is_refused_before_download() -> None:
    detector = FakeDetector(always(analysis(0.8)))
    checks = service(detector, max_bytes=100 * KB)
    fetch = fetch_of(b"x")
    over_platform = ImageRef(
        fetch, declared_size=60 * KB, download_limit=50 * KB, platform="Chatland"
    )
    reply = await checks.check("u", over_platform)
    assert isinstance(reply, Refusal) and reply.problem is Problem.TOO_LARGE
    assert "Chatland lets bots download files of up to 50 KB" in reply.message
    over_ours = ImageRef(fetch, declared_size=120 * KB, download_limit=500 * KB, platform="X")
    reply = await checks.check("u", over_ours)
    assert isinstance(reply, Refusal) and "I can check images of up to 100 KB" in reply.message
    assert fetch.calls == 0  # type: ignore[attr-defined]


async def test_actual_size_is_checked_after_download() -> None:
    detector = FakeDetector(always(analysis(0.8)))
    reply = await service(detector, max_bytes=KB).check(
        "u", ImageRef(fetch_of(bytes(2 * KB)), declared_size=10)
    )
    assert isinstance(reply, Refusal) and reply.problem is Problem.TOO_LARGE
    assert detector.seen == []


async def test_slow_download_times_out_as_download_failure() -> None:
    async def never() -> bytes:
        await asyncio.sleep(30)
        return b""

    detector = FakeDetector(always(analysis(0.8)))
    reply = await service(detector, timeout_s=0.05).check("u", ImageRef(never))
    assert isinstance(reply, Refusal) and reply.problem is Problem.DOWNLOAD_FAILED


async def test_rate_limit_charges_checks_and_refunds_our_failures() -> None:
    results: list[object] = [DetectorBusy("full"), analysis(0.1), analysis(0.1)]
    detector = FakeDetector(lambda data: results.pop(0))  # type: ignore[arg-type, return-value]
    checks = service(detector, rate=2)

    async def broken() -> bytes:
        raise DownloadFailed("reset")

    assert (await checks.check("u", ImageRef(broken))).problem is Problem.DOWNLOAD_FAILED  # type: ignore[union-attr]
    busy = await checks.check("u", ImageRef(fetch_of(b"a")))
    assert isinstance(busy, Refusal) and busy.problem is Problem.BUSY
    # Neither failure was the sender's doing: both checks were given back.
    assert isinstance(await checks.check("u", ImageRef(fetch_of(b"b"))), Verdict)
    assert isinstance(await checks.check("u", ImageRef(fetch_of(b"c"))), Verdict)
    limited = await checks.check("u", ImageRef(fetch_of(b"d")))
    assert isinstance(limited, Refusal) and limited.problem is Problem.RATE_LIMITED
    assert len(detector.seen) == 3


async def test_no_face_is_charged() -> None:
    detector = FakeDetector(always(NoFaceFound("none")))
    checks = service(detector, rate=1)
    first = await checks.check("u", ImageRef(fetch_of(b"a")))
    second = await checks.check("u", ImageRef(fetch_of(b"a")))
    assert isinstance(first, Refusal) and first.problem is Problem.NO_FACE
    assert isinstance(second, Refusal) and second.problem is Problem.RATE_LIMITED


async def test_album_is_charged_as_a_whole_and_answered_in_order() -> None:
    detector = FakeDetector(lambda data: analysis(data[0] / 100))
    checks = service(detector, rate=3)
    refs = [ImageRef(fetch_of(bytes([p]))) for p in (90, 10, 50)]
    pdf = ImageRef(fetch_of(b"%PDF"), mime_type="application/pdf")
    replies = await checks.check_many("u", [refs[0], pdf, refs[1], refs[2]])
    assert [r.p_fake if isinstance(r, Verdict) else r.problem for r in replies] == [
        pytest.approx(0.9), Problem.NOT_IMAGE, pytest.approx(0.1), pytest.approx(0.5),
    ]  # fmt: skip
    again = await checks.check_many("u", refs[:2])
    assert all(isinstance(r, Refusal) and r.problem is Problem.RATE_LIMITED for r in again)


async def test_admission_runs_limit_queues_backlog_and_refuses_the_rest_at_once() -> None:
    detector = FakeDetector(always(analysis(0.3)))
    detector.hold.clear()
    checks = service(detector, limit=2, backlog=1)
    running = [asyncio.create_task(checks.check("u", ImageRef(fetch_of(b"x")))) for _ in range(3)]
    while checks.admission.running < 2 or checks.admission.waiting < 1:
        await asyncio.sleep(0.001)
    assert detector.in_flight == 2  # only two reached the detector
    refused = await asyncio.wait_for(checks.check("u", ImageRef(fetch_of(b"x"))), 1.0)
    assert isinstance(refused, Refusal) and refused.problem is Problem.BUSY
    detector.hold.set()
    assert all(isinstance(r, Verdict) for r in await asyncio.gather(*running))
    await asyncio.wait_for(checks.wait_idle(), 1.0)


async def test_after_stop_intake_new_checks_hear_shutting_down() -> None:
    detector = FakeDetector(always(analysis(0.3)))
    checks = service(detector)
    checks.stop_intake()
    reply = await checks.check("u", ImageRef(fetch_of(b"x")))
    assert isinstance(reply, Refusal) and reply.problem is Problem.CLOSED
    assert reply.message == DetectorClosed.user_message


def test_admission_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Admission(0, 1)
