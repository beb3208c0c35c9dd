"""The page in a real browser: Debian's ``chromium`` driven by Selenium through ``chromedriver``
(``scripts/test`` installs both with apt when missing), against the web front with the real
detector service: the tiny generated checkpoint, or the shipped weights when screenshots are
asked for (``WEB_SCREENSHOT_DIR``: ``web.png`` at desktop width, ``web-phone.png`` at phone
width; the README's picture is the desktop one).

Upload the sample astronaut through the file input and wait for the verdict and its face box;
upload a non-image and see the error in words; paste a picture without a face and see that
error; reach the picker with the keyboard; load nothing from anywhere but the server.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core import ModelCard, NotAnImage
from bot.core.replies import format_percent
from bot.main import build_pipeline
from detector.errors import NoFaceFound
from detector.service import DetectorService

from .conftest import REPO, SAMPLES
from .standins.web_harness import FakeDetector, always, analysis, running_web, web_settings

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("WEB_SCREENSHOT_DIR")
SHIPPED = REPO / "weights" / "deepfake-bot-xception.safetensors"

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("DEEPFAKE_BOT_BROWSER_TESTS") == "required":
        raise RuntimeError("chromium and chromedriver are required (apt-get install -y "
                           "chromium chromium-driver)")
    pytest.skip("chromium/chromedriver not installed (scripts/test installs them)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only when a browser is there to drive
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT_S = 120  # a hang guard for slow machines, not a performance claim


@pytest.fixture()
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-proxy-server", "--window-size=1280,1000", "--hide-scrollbars",
                "--force-color-profile=srgb"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=DriverService(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: WebDriver, probe: Callable[[WebDriver], Any]) -> Any:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(probe)


def _viewport(driver: WebDriver, width: int, height: int, mobile: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
    })  # fmt: skip


def _screenshot(driver: WebDriver, path: Path, width: int, mobile: bool) -> None:
    _viewport(driver, width, 800, mobile)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    _viewport(driver, width, min(height, 4000), mobile)
    driver.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
    driver.save_screenshot(str(path))


_PASTE = """
const [b64, name, type] = arguments;
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, {type}));
document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
"""


def drive_page(driver: WebDriver, url: str, tmp: Path, shots: Path | None) -> dict[str, Any]:
    """Everything the browser does, in this (blocking) thread; what it saw comes back."""
    seen: dict[str, Any] = {}
    driver.get(url + "/")
    _until(driver, lambda d: d.find_element(By.ID, "model-name").text not in {"", "loading…"})
    seen["model"] = driver.find_element(By.ID, "model-name").text
    seen["privacy"] = driver.find_element(By.CLASS_NAME, "privacy").text

    # The keyboard reaches the picker first.
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    seen["first_tab"] = driver.switch_to.active_element.get_attribute("id")

    file_input = driver.find_element(By.ID, "file")
    # A non-image through the file input: the error where the picture would be.
    text = tmp / "notes.txt"
    text.write_text("not a picture\n")
    file_input.send_keys(str(text))
    failed = _until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card.failed .problem"))
    seen["not_image"] = failed[0].text

    # A pasted picture without a face.
    coffee = base64.b64encode((SAMPLES / "coffee.jpg").read_bytes()).decode()
    driver.execute_script(_PASTE, coffee, "coffee.jpg", "image/jpeg")
    _until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.failed")) == 2)
    seen["pasted"] = driver.find_elements(By.CSS_SELECTOR, ".card.failed .problem")[0].text

    # The astronaut through the file input: verdict, face box, per-face row.
    file_input.send_keys(str(SAMPLES / "astronaut.jpg"))
    card = _until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card.done"))[0]
    _until(driver, lambda d: card.find_element(By.TAG_NAME, "img").get_property("complete"))
    seen["headline"] = card.find_element(By.CLASS_NAME, "headline").text
    seen["caveat"] = card.find_element(By.CLASS_NAME, "caveat").text
    seen["rows"] = [r.text for r in card.find_elements(By.CSS_SELECTOR, "tbody tr")]
    boxes = card.find_elements(By.CSS_SELECTOR, ".box")
    seen["boxes"] = [(b.get_attribute("class"), b.text) for b in boxes]
    frame = card.find_element(By.CLASS_NAME, "frame").rect
    seen["box_inside"] = all(
        frame["x"] <= b.rect["x"] and b.rect["x"] + b.rect["width"] <= frame["x"] + frame["width"]
        + 1 and frame["y"] <= b.rect["y"] <= frame["y"] + frame["height"] for b in boxes
    )
    seen["resources"] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    if shots is not None:
        _screenshot(driver, shots / "web.png", 1280, mobile=False)
        _screenshot(driver, shots / "web-phone.png", 390, mobile=True)
    seen["phone_overflow"] = driver.execute_script(
        "return document.documentElement.scrollWidth > window.innerWidth + 1"
    ) if shots is not None else False
    if shots is None:  # still check the phone layout fits the screen
        _viewport(driver, 390, 844, True)
        seen["phone_overflow"] = driver.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1"
        )
    return seen


async def test_the_page_checks_pictures_in_a_real_browser(
    browser: WebDriver, tiny_checkpoint: Path, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    weights = SHIPPED if SHOTS else tiny_checkpoint
    settings = web_settings(deepfake_bot_weights=weights, detector_precision="fp32",
                            detector_threads=2)  # fmt: skip
    pipeline = build_pipeline(settings)
    expected = pipeline.analyze(astronaut_jpeg)  # the same model, called directly
    card = ModelCard.from_config(pipeline.classifier.config)
    detector = DetectorService(pipeline)
    shots = Path(SHOTS) if SHOTS else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    async with running_web(
        detector, settings, card=card, batch_sizes=lambda: detector.stats.batch_sizes
    ) as run:
        seen = await asyncio.to_thread(drive_page, browser, run.url, tmp_path, shots)
    assert seen["model"] == card.name
    assert "never stored" in seen["privacy"]
    assert seen["first_tab"] == "pick"
    assert seen["not_image"].startswith(NotAnImage.user_message)
    assert seen["pasted"].startswith(NoFaceFound.user_message)
    assert len(expected.faces) == 1
    band = {"no_manipulation_detected": "real", "uncertain": "uncertain",
            "likely_manipulated": "fake"}[expected.verdict.value]  # fmt: skip
    assert seen["headline"] == (
        f"{expected.verdict.label} — {format_percent(expected.p_fake)} probability of a face "
        "manipulation"
    )
    assert "not proof" in seen["caveat"]
    assert seen["boxes"] == [(f"box {band}", format_percent(expected.p_fake))]
    assert seen["box_inside"]
    assert len(seen["rows"]) == 1 and format_percent(expected.p_fake) in seen["rows"][0]
    assert seen["resources"] and all(r.startswith(run.url + "/") for r in seen["resources"]
                                     if not r.startswith("blob:"))
    assert not seen["phone_overflow"]


_DROP = """
const files = arguments[0];
const data = new DataTransfer();
for (const [b64, name, type] of files) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  data.items.add(new File([bytes], name, {type}));
}
const target = document.getElementById('drop');
target.dispatchEvent(new DragEvent('dragenter', {dataTransfer: data, bubbles: true}));
target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
"""


def drive_token_and_drop(driver: WebDriver, url: str, token: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    driver.get(url + "/")
    box = _until(driver, lambda d: d.find_element(By.ID, "token-box").is_displayed() and
                 d.find_element(By.ID, "token-box"))
    seen["asked"] = box.is_displayed()
    seen["focused"] = driver.switch_to.active_element.get_attribute("id")
    driver.switch_to.active_element.send_keys(token, Keys.ENTER)  # keyboard only
    _until(driver, lambda d: not d.find_element(By.ID, "token-box").is_displayed())
    astronaut = base64.b64encode((SAMPLES / "astronaut.jpg").read_bytes()).decode()
    driver.execute_script(_DROP, [[astronaut, "one.jpg", "image/jpeg"],
                                  [astronaut, "two.jpg", "image/jpeg"]])
    _until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.done")) == 2)
    seen["titles"] = sorted(e.text for e in driver.find_elements(By.CLASS_NAME, "card-title"))
    seen["boxes"] = len(driver.find_elements(By.CSS_SELECTOR, ".card.done .box"))
    # Over the server's size limit: refused in words without an upload.
    big = base64.b64encode(b"\xff\xd8" + b"0" * 3 * 1024 * 1024).decode()
    driver.execute_script(_DROP, [[big, "huge.jpg", "image/jpeg"]])
    seen["too_large"] = _until(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card.failed .problem")
    )[0].text
    # A reload keeps the token for the session: not asked again.
    driver.get(url + "/")
    _until(driver, lambda d: d.find_element(By.ID, "model-name").text not in {"", "loading…"})
    seen["asked_again"] = driver.find_element(By.ID, "token-box").is_displayed()
    return seen


async def test_the_page_asks_for_the_token_once_and_takes_dropped_pictures(
    browser: WebDriver,
) -> None:
    detector = FakeDetector(always(analysis(0.1, 0.9, width=512, height=512)))
    settings = web_settings(http_api_token="page-token-42", max_image_bytes=2 * 1024 * 1024)
    async with running_web(detector, settings) as run:
        seen = await asyncio.to_thread(drive_token_and_drop, browser, run.url, "page-token-42")
    assert seen["asked"] and seen["focused"] == "token-input"
    assert seen["titles"] == ["one.jpg", "two.jpg"]
    assert seen["boxes"] == 4  # two faces each
    assert len(detector.seen) == 2
    assert seen["too_large"] == "This file is 3.0 MB; I can check images of up to 2 MB."
    assert not seen["asked_again"]
