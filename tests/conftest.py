"""Shared fixtures: tiny real checkpoints made on the fly, sample images, log guards."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.config import ModelConfig
from detector.model import Classifier, RuntimeOptions, build_xception

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SHARED_FACES = REPO.parent / "shared" / "data" / "faces"

torch.set_num_threads(2)

# A small input size keeps the real Xception fast in tests; pooling is global, so every size
# from ~40 px up runs the same network.
TINY_CONFIG = ModelConfig(
    name="test-xception (untrained, tests only)", input_size=64, thresholds=(0.3, 0.7)
)


@pytest.fixture(scope="session")
def tiny_module() -> torch.nn.Module:
    torch.manual_seed(1234)
    return build_xception(2).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_module: torch.nn.Module) -> Path:
    from detector.checkpoints import save_checkpoint

    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_checkpoint(tiny_module, TINY_CONFIG, path)
    return path


@pytest.fixture()
def tiny_classifier(tiny_module: torch.nn.Module) -> Classifier:
    return Classifier(tiny_module, TINY_CONFIG, RuntimeOptions("fp32", channels_last=False))


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    return (SAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="session")
def coffee_jpeg() -> bytes:
    return (SAMPLES / "coffee.jpg").read_bytes()


def encode(arr: np.ndarray, fmt: str = "JPEG", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _fail_on_library_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Libraries (PTB, discord.py, aiohttp, asyncio) often swallow exceptions into ERROR logs;
    a test that produced one has failed even if its assertions passed."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR
        and r.name.split(".")[0] in {"telegram", "discord", "aiohttp", "asyncio", "httpx"}
    ]
    if bad:
        pytest.fail("library ERROR log: " + "; ".join(r.getMessage() for r in bad))
