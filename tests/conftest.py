"""Shared fixtures: tiny real checkpoints made on the fly, sample images, log guards."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from detector.config import ModelConfig
from detector.model import Classifier, RuntimeOptions, build_xception

from .serve_process import V2Server, running_server

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


@pytest.fixture(scope="session")
def v2_server(tiny_checkpoint: Path) -> Iterator[V2Server]:
    """One real ``deepfake-bot serve`` (Ray Serve, the V2 routes on 127.0.0.1) for the whole
    session, serving :data:`TINY_CONFIG`'s checkpoint in fp32 as ``deepfake-xception``: batches
    of up to 16 faces that wait 200 ms for more, 1 torch thread, bodies up to 1 MiB. Stopped by
    PID at the end; a non-zero exit or a Ray process left behind fails the session."""
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        reason = "the [serve] extra is not installed: pip install 'deepfake-bot[serve]'"
        if os.environ.get("DEEPFAKE_BOT_SERVE_TESTS") == "required":  # scripts/test: never skip
            pytest.fail(reason)
        pytest.skip(reason)
    with running_server(
        tiny_checkpoint, "--precision", "fp32", "--max-batch-size", "16", "--batch-wait-ms",
        "200", "--threads", "1", "--max-request-mb", "1",
    ) as server:
        yield server
    assert server.process.returncode == 0, server.log_tail()
    assert not server.leftovers, f"Ray processes left after serve stopped: {server.leftovers}"


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


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 'real' and 24 'fake' pictures made from the public-domain astronaut: reals are
    re-framed copies, fakes have a pasted, recoloured face region. Two sources, both splits."""
    root = tmp_path_factory.mktemp("tinyset")
    base = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        label = "fake" if i % 2 else "real"
        side = int(rng.integers(300, 512))
        img = base.resize((side, side))
        if label == "fake":
            face = img.crop((side // 3, side // 8, 2 * side // 3, side // 2))
            face = ImageEnhance.Color(face).enhance(1.8).resize(face.size)
            img.paste(face, (side // 3 + 2, side // 8 + 2))
        name = f"{label}{i}.jpg"
        img.save(root / name, quality=int(rng.integers(70, 95)))
        rows.append({"path": name, "label": label, "source": "a" if i % 4 < 2 else "b",
                     "split": "val" if i >= 36 else "train", "crop": "full"})
    # A whole picture without a face: evaluation must list it, not drop it silently.
    (root / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    rows.append({"path": "coffee.jpg", "label": "real", "source": "b", "split": "val",
                 "crop": "full"})
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"
