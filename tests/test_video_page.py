"""The page in a real browser with a video: a dropped animation gets the video's verdict and a
row per face track (when each face is seen), no boxes over the moving picture."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from .standins.fakes import FakeDetector, always, video_analysis
from .standins.web_harness import running_web
from .test_web_page import _DROP, _until, browser  # noqa: F401 - the browser fixture
from .video_clips import encode_animation, moving_face

pytestmark = pytest.mark.slow


def drive(driver: Any, url: str, gif: bytes) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    _until(driver, lambda d: d.find_element(By.ID, "model-name").text not in {"", "loading…"})
    accept = driver.find_element(By.ID, "file").get_attribute("accept")
    driver.execute_script(_DROP, [[base64.b64encode(gif).decode(), "dance.gif", "image/gif"]])
    card = _until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card.done"))[0]
    return {
        "accept": accept,
        "headline": card.find_element(By.CLASS_NAME, "headline").text,
        "rows": [r.text for r in card.find_elements(By.CSS_SELECTOR, "tbody tr")],
        "boxes": len(card.find_elements(By.CSS_SELECTOR, ".box")),
        "caveat": card.find_element(By.CLASS_NAME, "caveat").text,
    }


async def test_a_dropped_animation_shows_its_face_tracks(browser: Any) -> None:  # noqa: F811
    gif = encode_animation(moving_face(), frames=4)
    tracks = video_analysis([0.1, 0.2], [0.9, 0.95, 0.8], fps=5, container="gif")
    detector = FakeDetector(always(tracks))
    async with running_web(detector) as run:
        seen = await asyncio.to_thread(drive, browser, run.url, gif)
    assert detector.seen == [gif]
    assert "video/*" in seen["accept"]
    assert seen["headline"].startswith("Likely manipulated — 88%")
    assert seen["boxes"] == 0
    assert len(seen["rows"]) == 2
    assert "0.0–0.2 s, 2 frames" in seen["rows"][0] and "15%" in seen["rows"][0]
    assert "0.0–0.4 s, 3 frames" in seen["rows"][1] and "88%" in seen["rows"][1]
    assert "not been calibrated on real deepfake videos" in seen["caveat"]
