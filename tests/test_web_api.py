"""``POST /v1/check`` over loopback with a fake detector: what a script gets back for every kind
of request (verdicts, each refusal with its status code, tokens, a burst of requests), and the
API's description."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from openapi_spec_validator import validate
from PIL import Image

from bot.web.api import STATUS
from bot.web.openapi import REQUEST_CODES
from detector.errors import NoFaceFound, UnsupportedImage

from .standins.web_harness import FakeDetector, always, analysis, jpeg, running_web, web_settings

IMAGE = jpeg(120, 90)


async def post(url: str, data: Any, **kw: Any) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as http, http.post(url, data=data, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, CIMultiDict(r.headers), body


def form(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", data, filename=name, content_type=ctype)
    return f


async def test_a_verdict_is_the_check_json_plus_model_and_timings() -> None:
    detector = FakeDetector(always(analysis(0.12)))
    async with running_web(detector) as run:
        status, headers, body = await post(f"{run.url}/v1/check", form(IMAGE))
    assert status == 200
    assert detector.seen == [IMAGE]
    # The keys of `deepfake-bot check --json`, with the same meaning.
    assert body["path"] == "photo.jpg"
    assert body["verdict"] == "no_manipulation_detected" and body["error"] is None
    assert body["p_fake"] == 0.12 and body["faces_too_small"] == 0 and body["too_small"] == []
    assert body["faces"] == [{"box": [10, 100, 890, 100 + 880], "p_fake": 0.12,
                              "verdict": "no_manipulation_detected"}]
    assert body["model"] == "fake detector (tests)"
    assert isinstance(body["timings_ms"], dict)
    assert body["label"] == "No manipulation detected"
    assert body["headline"].endswith("12% probability of a face manipulation")
    assert "not proof" in body["caveat"]
    assert "annotated_png" not in body
    assert len(headers["X-Request-Id"]) >= 8


async def test_raw_body_and_several_faces() -> None:
    detector = FakeDetector(always(analysis(0.1, 0.8, 0.5)))
    async with running_web(detector) as run:
        status, _, body = await post(
            f"{run.url}/v1/check", IMAGE, headers={"Content-Type": "image/jpeg"}
        )
    assert status == 200
    assert body["path"] is None
    assert [f["p_fake"] for f in body["faces"]] == [0.1, 0.8, 0.5]
    assert [f["verdict"] for f in body["faces"]] == [
        "no_manipulation_detected", "likely_manipulated", "uncertain",
    ]
    assert body["verdict"] == "likely_manipulated" and body["p_fake"] == 0.8


async def test_annotated_image_as_base64_png_or_as_the_body() -> None:
    detector = FakeDetector(always(analysis(0.9)))
    async with running_web(detector) as run:
        status, _, body = await post(f"{run.url}/v1/check?annotate=1", form(IMAGE))
        assert status == 200
        with Image.open(io.BytesIO(base64.b64decode(body["annotated_png"]))) as png:
            assert png.format == "PNG" and png.size == (80, 60)  # what the fake drew
        status, headers, raw = await post(
            f"{run.url}/v1/check", form(IMAGE), headers={"Accept": "image/png"}
        )
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert headers["X-Verdict"] == "likely_manipulated" and headers["X-P-Fake"] == "0.9000"
    with Image.open(io.BytesIO(raw)) as png:
        assert png.format == "PNG"


@pytest.mark.parametrize(
    ("data", "ctype", "result", "status", "code"),
    [
        (IMAGE, "image/jpeg", NoFaceFound("none"), 422, "no_face"),
        (b"%PDF-1.4 not a picture", "application/pdf", None, 415, "not_image"),
        (b"garbage bytes", "application/octet-stream", UnsupportedImage("x"), 415, "unreadable"),
    ],
)
async def test_refusals_are_json_with_their_status(
    data: bytes, ctype: str, result: BaseException | None, status: int, code: str
) -> None:
    detector = FakeDetector(always(result or analysis(0.5)))
    async with running_web(detector) as run:
        got, _, body = await post(f"{run.url}/v1/check", form(data, "upload.jpg", ctype))
    assert got == status
    assert body["error"]["code"] == code
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if result is None:
        assert detector.seen == []  # refused on the declared type, never analysed
    if code == "no_face":
        assert body["error"]["message"] == NoFaceFound.user_message


async def test_oversized_uploads_are_413_declared_or_not() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    big = b"\xff\xd8" + b"0" * 5000
    async with running_web(detector, web_settings(max_image_bytes=4096)) as run:
        raw = await post(f"{run.url}/v1/check", big, headers={"Content-Type": "image/jpeg"})
        multipart = await post(f"{run.url}/v1/check", form(big))
    for status, _, body in (raw, multipart):
        assert status == 413
        assert body["error"]["code"] == "too_large"
        assert "4 KB" in body["error"]["message"]
    assert detector.seen == []


async def test_no_image_in_the_request_is_400() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_web(detector) as run:
        empty = await post(f"{run.url}/v1/check", b"", headers={"Content-Type": "image/jpeg"})
        other = aiohttp.FormData()
        other.add_field("picture", IMAGE, filename="a.jpg", content_type="image/jpeg")
        wrong_field = await post(f"{run.url}/v1/check", other)
        broken = await post(f"{run.url}/v1/check", b"--x\r\nnot a part",
                            headers={"Content-Type": "multipart/form-data; boundary=zzz"})
        async with aiohttp.ClientSession() as http, http.get(f"{run.url}/v1/nothing") as r:
            missing = r.status, await r.json()
    for status, _, body in (empty, wrong_field):
        assert status == 400 and body["error"]["code"] == "no_file"
    assert broken[0] == 400 and broken[2]["error"]["code"] == "bad_request"
    assert missing == (404, {"error": {"code": "not_found", "message": "Not Found"}})


async def test_bearer_token_when_one_is_set() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_web(detector, web_settings(http_api_token="s3cret-token")) as run:
        url = f"{run.url}/v1/check"
        none = await post(url, form(IMAGE))
        wrong = await post(url, form(IMAGE), headers={"Authorization": "Bearer nope"})
        right = await post(url, form(IMAGE), headers={"Authorization": "Bearer s3cret-token"})
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{run.url}/v1/model") as r:
                assert (await r.json())["auth_required"] is True
            for path in ("/", "/healthz", "/metrics"):
                async with http.get(f"{run.url}{path}") as r:
                    assert r.status == 200, path
    for status, headers, body in (none, wrong):
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert right[0] == 200
    assert len(detector.seen) == 1


async def test_rate_limit_is_429_with_retry_after() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_web(detector, web_settings(rate_limit_per_minute=2)) as run:
        answers = [await post(f"{run.url}/v1/check", form(IMAGE)) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    _, headers, body = answers[2]
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_a_burst_is_answered_each_with_a_verdict_or_503() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    detector.hold.clear()
    settings = web_settings(max_concurrent_checks=2, check_queue_size=2)
    async with running_web(detector, settings) as run:
        tasks = [
            asyncio.create_task(post(f"{run.url}/v1/check", form(IMAGE))) for _ in range(12)
        ]
        # Hold the detector until the admission bounds have refused the rest.
        while sum(t.done() for t in tasks) < 8:
            await asyncio.sleep(0.01)
        detector.hold.set()
        answers = await asyncio.wait_for(asyncio.gather(*tasks), 60)  # a hang guard only
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200] * 4 + [503] * 8
    for status, headers, body in answers:
        if status == 503:
            assert body["error"]["code"] == "busy" and headers["Retry-After"] == "2"


async def test_shutting_down_refuses_new_checks_with_503() -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_web(detector) as run:
        await run.web.intake.stop_intake()
        status, headers, body = await post(f"{run.url}/v1/check", form(IMAGE))
    assert status == 503 and body["error"]["code"] == "closed" and "Retry-After" in headers
    assert detector.seen == []


async def test_openapi_is_valid_and_lists_every_status() -> None:
    async with (
        running_web(FakeDetector(always(analysis(0.5)))) as run,
        aiohttp.ClientSession() as http,
        http.get(f"{run.url}/openapi.json") as r,
    ):
        spec = await r.json()
    validate(spec)
    responses = spec["paths"]["/v1/check"]["post"]["responses"]
    assert {str(s) for s in STATUS.values()} <= set(responses)
    codes = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
                ["code"]["enum"])  # fmt: skip
    assert {p.value for p in STATUS} | REQUEST_CODES == codes
